/* kiln shim: the C99 functions generated code calls in libkiln_rt.
 *
 * Every function carries a version suffix. A released function never changes: a new
 * argument means a new _v2 beside it and the old one stays, so old model.so files keep
 * working. Optional arguments are pointers; NULL means absent. All return 0 or a
 * kiln_status, with a message recorded for kiln_last_error().
 * tests/abi/ holds the released signatures and fails on any change.
 */
#ifndef KILN_SHIM_H
#define KILN_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Shim level of this header. A level is a set of functions; model.so records in its
 * descriptor (shim_version) the highest level among the functions it calls, found with
 * KILN_SHIM_FUNCTIONS below -- not from the _vN suffix, which numbers revisions of one
 * function (kiln_shim_scatter_elements_v1 is revision 1 but arrived at level 2). A runtime
 * refuses a model whose level is above its own with KILN_ERR_VERSION_MISMATCH.
 *   level 1: conv_v1, matmul_v1
 *   level 2: conv_v2, scatter_elements_v1, scatter_nd_v1, sdpa_v1, sdpa_v2
 *   level 3: nonzero_v1, unique_v1, nms_v1 (ops whose output size depends on data),
 *            to_string_v1, from_string_v1, string_normalizer_v1 (string tensors)
 *   level 4: cuda_matmul_v1 (cuBLASLt), cuda_conv_v1 (cuDNN): CUDA models only
 *   level 5: string_lookup_v1 (ai.onnx.ml LabelEncoder with string keys)
 *   level 6: string_concat_v1, string_split_v1, regex_full_match_v1 (RE2), image_decode_v1
 *   level 7: matmul_v2, cuda_matmul_v2 (a residual addend; GELU post-ops)
 *   level 8: matmul_multi_v1 (sibling matmuls sharing A as one GEMM)
 *   level 9: conv_chain_v1 (an inverted-residual block's convs, band by band)
 *   level 10: sdpa_v3 (attention reading Q/K/V and writing out through strides) */
#define KILN_SHIM_VERSION 10

/* X(function, level): every released shim function and the level that introduced it. One
 * list for the compiler (the level to record), the runtime and tests/abi/. Append only. */
#define KILN_SHIM_FUNCTIONS(X)                                                                     \
  X(kiln_shim_conv_v1, 1)                                                                          \
  X(kiln_shim_matmul_v1, 1)                                                                        \
  X(kiln_shim_conv_v2, 2)                                                                          \
  X(kiln_shim_scatter_elements_v1, 2)                                                              \
  X(kiln_shim_scatter_nd_v1, 2)                                                                    \
  X(kiln_shim_sdpa_v1, 2)                                                                          \
  X(kiln_shim_sdpa_v2, 2)                                                                          \
  X(kiln_shim_nonzero_v1, 3)                                                                       \
  X(kiln_shim_unique_v1, 3)                                                                        \
  X(kiln_shim_nms_v1, 3)                                                                           \
  X(kiln_shim_to_string_v1, 3)                                                                     \
  X(kiln_shim_from_string_v1, 3)                                                                   \
  X(kiln_shim_string_normalizer_v1, 3)                                                             \
  X(kiln_shim_cuda_matmul_v1, 4)                                                                   \
  X(kiln_shim_cuda_conv_v1, 4)                                                                     \
  X(kiln_shim_string_lookup_v1, 5)                                                                 \
  X(kiln_shim_string_concat_v1, 6)                                                                 \
  X(kiln_shim_string_split_v1, 6)                                                                  \
  X(kiln_shim_regex_full_match_v1, 6)                                                              \
  X(kiln_shim_image_decode_v1, 6)                                                                  \
  X(kiln_shim_matmul_v2, 7)                                                                        \
  X(kiln_shim_cuda_matmul_v2, 7)                                                                   \
  X(kiln_shim_matmul_multi_v1, 8)                                                                  \
  X(kiln_shim_conv_chain_v1, 9)                                                                    \
  X(kiln_shim_sdpa_v3, 10)

/* Weak references to shims newer than level 3. model.so links with -z now, so a strong
 * reference to a function an older libkiln_rt lacks fails inside dlopen ("undefined symbol")
 * before container creation can refuse the model, by its recorded shim level, with a message
 * naming both versions. Generated code -- and only it: a weak declaration in the runtime
 * would make its own definitions weak -- defines KILN_SHIM_WEAK_FROM_LEVEL to 4 before it
 * includes any kiln header. Each function of that level or above is then declared weak and
 * is NULL on a runtime without it, which refuses the model at creation. Levels 1-3 stay
 * strong: every runtime a model can meet has them, and the linker keeps checking them.
 * A new level N adds a KILN_SHIM_SINCE_N like KILN_SHIM_SINCE_4 and puts it on each of its
 * declarations; tests/abi/weak_shim_test.c fails if one is missing. */
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL < 4
#error "KILN_SHIM_WEAK_FROM_LEVEL must be at least 4: shim levels 1-3 are in every libkiln_rt"
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 4
#define KILN_SHIM_SINCE_4 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_4
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 5
#define KILN_SHIM_SINCE_5 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_5
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 6
#define KILN_SHIM_SINCE_6 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_6
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 7
#define KILN_SHIM_SINCE_7 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_7
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 8
#define KILN_SHIM_SINCE_8 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_8
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 9
#define KILN_SHIM_SINCE_9 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_9
#endif
#if defined(KILN_SHIM_WEAK_FROM_LEVEL) && KILN_SHIM_WEAK_FROM_LEVEL <= 10
#define KILN_SHIM_SINCE_10 __attribute__((weak))
#else
#define KILN_SHIM_SINCE_10
#endif

/* Per-runner state (primitive caches); obtained from kiln_run_ctx.runner. */
typedef void kiln_shim_ctx;

/* Fused elementwise operation applied after conv/matmul (oneDNN post-op). The GELUs came with
 * level 7: only the level-7 matmuls (kiln_shim_matmul_v2, kiln_shim_cuda_matmul_v2) take them;
 * kiln_shim_matmul_v1 and the convolutions refuse them (an unknown post_op). */
typedef enum kiln_post_op {
  KILN_POST_NONE = 0,
  KILN_POST_RELU = 1,
  KILN_POST_CLIP = 2,
  KILN_POST_GELU_ERF = 3, /* 0.5 x (1 + erf(x / sqrt(2))), ONNX Gelu approximate="none" */
  KILN_POST_GELU_TANH = 4 /* 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) */
} kiln_post_op;

typedef struct kiln_conv_params_v1 {
  int32_t spatial_rank; /* 1, 2 or 3 */
  int32_t post_op;      /* kiln_post_op, applied after bias and residual add */
  int64_t groups;
  int64_t strides[3];
  int64_t dilations[3]; /* ONNX convention: 1 = dense */
  int64_t pads_begin[3];
  int64_t pads_end[3];
  float clip_min, clip_max;
} kiln_conv_params_v1;

/* y = post_op(conv(x, w) + bias + residual). float32, plain NC[D]HW / OI[D]HW layouts.
 * x_dims: N,C,spatial...; w_dims: O,C/groups,kernel...; y_dims: N,O,spatial...
 * bias (length O) and residual (shape of y) are optional. site identifies the call site
 * so primitives are created once per runner and shape. */
int kiln_shim_conv_v1(kiln_shim_ctx *ctx, int64_t site, const float *x, const int64_t *x_dims,
                      const float *w, const int64_t *w_dims, const float *bias,
                      const float *residual, float *y, const int64_t *y_dims,
                      const kiln_conv_params_v1 *params);

/* Memory layout of activations for kiln_shim_conv_v2 (dims are always given as N,C,spatial). */
typedef enum kiln_data_layout {
  KILN_LAYOUT_CHANNELS_FIRST = 0, /* NC[D]HW, as v1 */
  KILN_LAYOUT_CHANNELS_LAST = 1   /* N[D]HWC for x, y and residual */
} kiln_data_layout;

/* As kiln_shim_conv_v1, with x, y and residual stored in `data_layout` (kiln_data_layout).
 * Channels-last lets consecutive convs run without layout conversions. */
int kiln_shim_conv_v2(kiln_shim_ctx *ctx, int64_t site, const float *x, const int64_t *x_dims,
                      const float *w, const int64_t *w_dims, const float *bias,
                      const float *residual, float *y, const int64_t *y_dims,
                      const kiln_conv_params_v1 *params, int32_t data_layout);

typedef struct kiln_matmul_params_v1 {
  int64_t batch; /* number of matrices */
  int64_t m, n, k;
  int64_t a_batch_stride, b_batch_stride, c_batch_stride; /* elements; 0 = broadcast */
  int64_t lda, ldb, ldc; /* row strides in elements of A (m x k or k x m), B, C */
  int32_t trans_a, trans_b;
  int32_t post_op; /* kiln_post_op */
  float alpha;     /* scales A*B */
  float beta;      /* scales addend */
  float clip_min, clip_max;
  int32_t addend_kind; /* 0 none, 1 row vector (n), 2 full (m x n, ld = ldc, per batch) */
  int32_t reserved;
} kiln_matmul_params_v1;

/* C = post_op(alpha * op(A) * op(B) + beta * addend), float32, batched. */
int kiln_shim_matmul_v1(kiln_shim_ctx *ctx, int64_t site, const float *a, const float *b,
                        const float *addend, float *c, const kiln_matmul_params_v1 *params);

/* ---- level 2 ------------------------------------------------------------------------ */

/* Element types of dtype-generic shims (explicit values; append only). */
typedef enum kiln_elem_type {
  KILN_ELEM_F32 = 0,
  KILN_ELEM_F64 = 1,
  KILN_ELEM_F16 = 2,
  KILN_ELEM_BF16 = 3,
  KILN_ELEM_I8 = 4,
  KILN_ELEM_I16 = 5,
  KILN_ELEM_I32 = 6,
  KILN_ELEM_I64 = 7,
  KILN_ELEM_U8 = 8,
  KILN_ELEM_U16 = 9,
  KILN_ELEM_U32 = 10,
  KILN_ELEM_U64 = 11,
  KILN_ELEM_BOOL = 12 /* one byte, 0 or 1; add = or, mul = and */
} kiln_elem_type;

/* ONNX `reduction` of ScatterElements / ScatterND (opset 16/18). */
typedef enum kiln_reduction {
  KILN_REDUCE_NONE = 0, /* overwrite; with duplicate indices the last update wins */
  KILN_REDUCE_ADD = 1,
  KILN_REDUCE_MUL = 2,
  KILN_REDUCE_MIN = 3,
  KILN_REDUCE_MAX = 4
} kiln_reduction;

/* ONNX ScatterElements. out = data, then for every index position p of `indices` (shape
 * indices_dims, rank `rank`, same rank as data): out[p with p[axis] = indices[p]] =
 * reduce(that, updates[p]). updates has the shape of indices. Tensors are contiguous
 * row-major; elem_size must be the size of elem_type (it is checked). Indices are int64, may
 * be negative (counted from the end of the axis) and must lie in [-dim, dim-1]; otherwise
 * KILN_ERR_INVALID_ARGUMENT naming the position. axis in [-rank, rank-1]. out may equal data
 * (in place, no copy); it must not otherwise overlap data, indices or updates. Updates are
 * applied in row-major order of `indices`, single-threaded (deterministic). ctx may be NULL. */
int kiln_shim_scatter_elements_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type,
                                  int32_t elem_size, const void *data, const int64_t *data_dims,
                                  int32_t rank, const int64_t *indices, const int64_t *indices_dims,
                                  const void *updates, int32_t axis, int32_t reduction, void *out);

/* ONNX ScatterND. data: data_rank dims; indices: indices_rank dims, the last of which (k,
 * 1 <= k <= data_rank) indexes the first k dims of data; updates: indices_dims[0..-2] followed
 * by data_dims[k..]. out = data, then for each index tuple i: the slice out[indices[i]] =
 * reduce(slice, updates[i]). Index, overlap, ordering and elem rules as for
 * kiln_shim_scatter_elements_v1. */
int kiln_shim_scatter_nd_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type, int32_t elem_size,
                            const void *data, const int64_t *data_dims, int32_t data_rank,
                            const int64_t *indices, const int64_t *indices_dims,
                            int32_t indices_rank, const void *updates, int32_t reduction,
                            void *out);

/* Scaled dot-product attention, float32, contiguous [B, H, S, D] layouts:
 *   out[b,h,i,:] = softmax_j(scale * q[b,h,i,:].k[b,h,j,:] + mask[b,h,i,j]) . v[b,h,j,:]
 * dims = {B, H, Sq, Skv, D, Dv}: q is [B,H,Sq,D], k [B,H,Skv,D], v [B,H,Skv,Dv],
 * out [B,H,Sq,Dv]. mask (optional, NULL = none) is additive (use -INFINITY to mask out);
 * mask_strides (optional; NULL = contiguous [B,H,Sq,Skv]) gives its strides in elements for
 * b, h, i, j, 0 to broadcast a dim (e.g. {0, 0, Skv, 1} for one [Sq,Skv] mask). A row whose
 * scores are all -inf yields zeros. out must not overlap the inputs. ctx must be a runner (its
 * arena holds per-thread score rows); work is split over (b, h, i) with OpenMP. */
int kiln_shim_sdpa_v1(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                      const float *v, const float *mask, const int64_t *mask_strides, float *out,
                      const int64_t *dims, float scale);

/* As kiln_shim_sdpa_v1, with the scale optional: NULL means 1/sqrt(D) (ONNX Attention's
 * default). The compiler emits _v2 and passes NULL when the model gives no scale. */
int kiln_shim_sdpa_v2(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                      const float *v, const float *mask, const int64_t *mask_strides, float *out,
                      const int64_t *dims, const float *scale);

/* ---- level 3: outputs whose size depends on data ------------------------------------
 * Each writes its outputs compactly (row-major for the actual size) into buffers sized for
 * the upper bound, and the actual size into *count, which the generated code then uses as
 * the value of a symbol (see run_v2 in model_desc.h). */

/* ONNX NonZero on a mask of n = prod(dims) bytes (0 or 1, row-major): y receives the
 * multi-indices of the set bytes as int64 [rank, count] (room for rank * n), count their
 * number. rank 0 is a scalar: count is 0 or 1 and y is [0, count]. */
int kiln_shim_nonzero_v1(kiln_shim_ctx *ctx, int64_t site, const uint8_t *mask, const int64_t *dims,
                         int32_t rank, int64_t *y, int64_t *count);

/* ONNX Unique over slices. x is [outer, n, inner] (dims) of elem_type/elem_size; slice j is
 * x[:, j, :], compared element by element in row-major order. sorted != 0 orders the unique
 * slices ascending (lexicographically), else by first occurrence. Writes y [outer, count,
 * inner], first_index [count] (first occurrence of each), inverse [n] (the unique slice of
 * each input slice) and counts [count]; any of them may be NULL. Buffers have room for n. */
int kiln_shim_unique_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type, int32_t elem_size,
                        const void *x, const int64_t *dims, int32_t sorted, void *y,
                        int64_t *first_index, int64_t *inverse, int64_t *counts, int64_t *count);

/* ONNX NonMaxSuppression, float32. dims = {B, C, N}: boxes [B, N, 4] (corners y1,x1,y2,x2 in
 * any order, or center_point_box: cx,cy,w,h), scores [B, C, N]. For each (batch, class),
 * boxes with score > score_threshold (if given) are taken in descending score order (ties:
 * lower index first) and kept unless their IoU with a kept box exceeds iou_threshold, up to
 * max_per_class. NULL thresholds/limit mean the ONNX defaults (none, 0, 0 boxes). selected
 * receives int64 [count, 3] rows (batch, class, box); room for B * C * N rows. */
int kiln_shim_nms_v1(kiln_shim_ctx *ctx, int64_t site, const float *boxes, const float *scores,
                     const int64_t *dims, const int64_t *max_per_class, const float *iou_threshold,
                     const float *score_threshold, int32_t center_point_box, int64_t *selected,
                     int64_t *count);

/* ---- level 3: string tensors ---------------------------------------------------------
 * A string element is a `const char *` to NUL-terminated UTF-8. Strings a shim produces
 * live in the runner's scratch arena until the run ends (the runtime copies model outputs
 * out before that). ctx must be a runner. */

/* ONNX Cast to string: each of the n numbers of elem_type/elem_size as the shortest decimal
 * that reads back to the same value ("0.039187793", "NaN", "INF", "-INF"; integers and
 * bools as integers). */
int kiln_shim_to_string_v1(kiln_shim_ctx *ctx, int64_t site, int32_t elem_type, int32_t elem_size,
                           const void *x, int64_t n, const char **y);

/* ONNX Cast from string: parses n decimal strings (as strtod/strtoll; "NaN", "INF", "-INF"
 * and "inf"/"infinity" in any case) into elem_type/elem_size. Unparsable text fails with
 * KILN_ERR_INVALID_ARGUMENT naming the element. */
int kiln_shim_from_string_v1(kiln_shim_ctx *ctx, int64_t site, const char *const *x, int64_t n,
                             int32_t elem_type, int32_t elem_size, void *y);

/* ONNX StringNormalizer on n strings: drops the stopwords (case_sensitive != 0 compares
 * exactly, else ignoring ASCII case), then applies case_action (0 NONE, 1 LOWER, 2 UPPER;
 * ASCII letters). y receives the kept strings in order (room for max(n, 1)) and count their
 * number; when every string is dropped, y holds one empty string and count is 1. */
int kiln_shim_string_normalizer_v1(kiln_shim_ctx *ctx, int64_t site, const char *const *x,
                                   int64_t n, int32_t case_action, int32_t case_sensitive,
                                   const char *const *stopwords, int64_t num_stopwords,
                                   const char **y, int64_t *count);

/* ---- level 5: ai.onnx.ml --------------------------------------------------------------
 * LabelEncoder with string keys: index[i] is the first k whose keys[k] equals x[i] (byte-wise;
 * a NULL element reads as ""), or -1 when none does. */
KILN_SHIM_SINCE_5 int kiln_shim_string_lookup_v1(kiln_shim_ctx *ctx, int64_t site,
                                                 const char *const *x, int64_t n,
                                                 const char *const *keys, int64_t num_keys,
                                                 int64_t *index);

/* ---- level 6: more string ops ---------------------------------------------------------
 * Strings as for level 3 (a NULL element reads as ""); produced strings live in the
 * runner's arena until the run ends. */

/* ONNX StringConcat on n element pairs (the caller broadcasts): y[i] = a[i] followed by b[i]. */
KILN_SHIM_SINCE_6 int kiln_shim_string_concat_v1(kiln_shim_ctx *ctx, int64_t site,
                                                 const char *const *a, const char *const *b,
                                                 int64_t n, const char **y);

/* ONNX StringSplit on n strings, as Python's str.split: a non-empty delimiter splits at each
 * occurrence (empty pieces kept); a NULL or empty one splits at runs of ASCII whitespace and
 * drops leading and trailing whitespace. maxsplit >= 0 limits the splits per string (the
 * rest stays in the last piece); < 0 means no limit. K, the most pieces of any string, goes
 * to *count; y receives n rows of K pieces (shorter rows padded with "") and lengths[i] the
 * pieces of string i. y has room for n * room pieces: a string with more than `room` pieces
 * fails with KILN_ERR_SHAPE_MISMATCH naming it, before anything is written. */
KILN_SHIM_SINCE_6 int kiln_shim_string_split_v1(kiln_shim_ctx *ctx, int64_t site,
                                                const char *const *x, int64_t n,
                                                const char *delimiter, int64_t maxsplit,
                                                int64_t room, const char **y, int64_t *lengths,
                                                int64_t *count);

/* ONNX RegexFullMatch: y[i] = 1 when the whole of x[i] matches pattern (RE2 syntax), else 0.
 * The compiled pattern is cached per (runner, site). A pattern RE2 rejects fails with
 * KILN_ERR_INVALID_ARGUMENT and RE2's reason. */
KILN_SHIM_SINCE_6 int kiln_shim_regex_full_match_v1(kiln_shim_ctx *ctx, int64_t site,
                                                    const char *pattern, const char *const *x,
                                                    int64_t n, uint8_t *y);

/* ONNX ImageDecoder: decodes the n bytes of one encoded image -- JPEG (libjpeg), PNG (libpng;
 * 8-bit, alpha dropped), BMP (uncompressed 24/32-bit), binary PNM (P5/P6, maxval <= 255),
 * TIFF (libtiff), WebP (libwebp) or JPEG 2000 (OpenJPEG; 8-bit gray/RGB) -- into y as uint8
 * [height, width, channels]: pixel_format 0 RGB and 1 BGR (3 channels), 2 Grayscale (1
 * channel, PIL's ITU-R 601-2 luma of the RGB pixels: (19595 R + 38470 G + 7471 B + 32768)
 * >> 16). y has room for max_height * max_width * channels bytes; a larger image fails with
 * KILN_ERR_SHAPE_MISMATCH, another format or corrupt data with KILN_ERR_INVALID_ARGUMENT
 * saying which. */
KILN_SHIM_SINCE_6 int kiln_shim_image_decode_v1(kiln_shim_ctx *ctx, int64_t site,
                                                const uint8_t *data, int64_t n,
                                                int32_t pixel_format, int64_t max_height,
                                                int64_t max_width, uint8_t *y, int64_t *height,
                                                int64_t *width);

/* ---- level 4: CUDA library calls ------------------------------------------------------
 * Pointers are device pointers (CUdeviceptr). ctx is a runner of a CUDA container: the
 * calls are enqueued on its run's stream, take workspace from its arena and keep plans
 * (cuBLASLt matmul descriptors and heuristics, cuDNN plans) per (site, shape). */

#define KILN_CUDA_ALLOW_TF32 1u /* flags bit: let fp32 math use TF32 tensor cores */

typedef struct kiln_cuda_matmul_params_v1 {
  kiln_matmul_params_v1 mm; /* geometry, alpha/beta, addend and post_op as for matmul_v1 */
  int32_t elem_type;        /* kiln_elem_type of a, b, addend and c: F32, F16 or BF16 */
  uint32_t flags;           /* KILN_CUDA_* */
  int32_t reserved[6];      /* must be zero */
} kiln_cuda_matmul_params_v1;

/* C = post_op(alpha * op(A) * op(B) + beta * addend) through cuBLASLt (bias and ReLU as
 * epilogues; others by a separate kernel). */
KILN_SHIM_SINCE_4 int kiln_shim_cuda_matmul_v1(kiln_shim_ctx *ctx, int64_t site, const void *a,
                                               const void *b, const void *addend, void *c,
                                               const kiln_cuda_matmul_params_v1 *params);

/* y = post_op(conv(x, w) + bias + residual) through cuDNN; NC[D]HW layouts; bias and
 * residual optional (NULL). elem_type F32, F16 or BF16; flags KILN_CUDA_*. */
KILN_SHIM_SINCE_4 int kiln_shim_cuda_conv_v1(kiln_shim_ctx *ctx, int64_t site, const void *x,
                                             const int64_t *x_dims, const void *w,
                                             const int64_t *w_dims, const void *bias,
                                             const void *residual, void *y, const int64_t *y_dims,
                                             const kiln_conv_params_v1 *params, int32_t elem_type,
                                             uint32_t flags);

/* ---- level 7: matmul epilogues of transformer layers ---------------------------------- */

/* As kiln_shim_matmul_v1, with a residual and the GELU post-ops:
 *   C = post_op(alpha * op(A) * op(B) + beta * addend + residual)
 * residual (optional, NULL = none) is a full m x n matrix per batch with C's ldc and
 * c_batch_stride; it may be C itself (in place) but must not otherwise overlap C, and it
 * does not combine with a full addend (addend_kind 2: KILN_ERR_INVALID_ARGUMENT). post_op
 * is any kiln_post_op. */
KILN_SHIM_SINCE_7 int kiln_shim_matmul_v2(kiln_shim_ctx *ctx, int64_t site, const float *a,
                                          const float *b, const float *addend,
                                          const float *residual, float *c,
                                          const kiln_matmul_params_v1 *params);

/* kiln_shim_matmul_v2 through cuBLASLt (as kiln_shim_cuda_matmul_v1; device pointers): the
 * residual is cuBLASLt's C with beta 1, KILN_POST_GELU_TANH its GELU(_BIAS) epilogue.
 * cuBLASLt's GELU is the tanh approximation, so KILN_POST_GELU_ERF (and CLIP) are refused
 * with KILN_ERR_UNSUPPORTED; the compiler leaves an erf GELU to a generated kernel. */
KILN_SHIM_SINCE_7 int kiln_shim_cuda_matmul_v2(kiln_shim_ctx *ctx, int64_t site, const void *a,
                                               const void *b, const void *addend,
                                               const void *residual, void *c,
                                               const kiln_cuda_matmul_params_v1 *params);

/* ---- level 8: sibling matmuls as one GEMM --------------------------------------------- */

/* Most B matrices one kiln_shim_matmul_multi_v1 call takes. */
#define KILN_MATMUL_MULTI_MAX 8

typedef struct kiln_matmul_multi_params_v1 {
  int64_t m, k;  /* rows of A and C; inner dim */
  int64_t lda;   /* row stride of A in elements, >= k */
  int64_t ldc;   /* row stride of C in elements, >= n[0] + ... + n[count - 1] */
  int32_t count; /* number of B matrices, 1..KILN_MATMUL_MULTI_MAX */
  int32_t reserved;
  int64_t n[KILN_MATMUL_MULTI_MAX]; /* columns of each B; entries past count are ignored */
} kiln_matmul_multi_params_v1;

/* C = A x [B_0 | B_1 | ... ] + [bias_0 | bias_1 | ...], float32, row-major: one GEMM for
 * matmuls that share A (a transformer's Q, K and V projections). A is m x k (row stride lda);
 * b[g] is k x n[g], contiguous; bias (optional, NULL = none) holds count pointers, each NULL
 * or n[g] floats. Output g is the column block of C starting at n[0] + ... + n[g - 1]: the
 * caller reads it through a view with row stride ldc. B's that lie in the model's constants
 * are concatenated and packed once per runner and constant set (dropped when any constant is
 * updated or the sets are swapped); other B's are concatenated on every call. */
KILN_SHIM_SINCE_8 int kiln_shim_matmul_multi_v1(kiln_shim_ctx *ctx, int64_t site, const float *a,
                                                const float *const *b, const float *const *bias,
                                                float *c,
                                                const kiln_matmul_multi_params_v1 *params);

/* ---- level 9 ------------------------------------------------------------------------ */

/* Most convs one kiln_shim_conv_chain_v1 call takes. */
#define KILN_CONV_CHAIN_MAX 3

typedef struct kiln_conv_chain_params_v1 {
  int32_t count; /* 2: depthwise 3x3, then pointwise 1x1; 3: pointwise, depthwise, pointwise */
  int32_t reserved;
  kiln_conv_params_v1 conv[KILN_CONV_CHAIN_MAX]; /* each conv as for conv_v2; past count ignored */
} kiln_conv_chain_params_v1;

/* y = conv_last(... conv_0(x)) + residual, float32, channels-last: a MobileNet inverted-residual
 * block (1x1 expand, 3x3 depthwise, 1x1 project) run band by band of output rows, so the
 * expanded activations stay in cache instead of passing through memory. x is NHWC with logical
 * dims x_dims (N, C, H, W); w[i] is conv i's ONNX weight with dims w_dims[4 i .. 4 i + 3];
 * bias[i] is NULL or its bias; residual (NULL = none; y's shape and layout) is added to the
 * last conv's output before its post-op; y is NHWC with logical dims y_dims. Pointwise convs
 * have groups 1, stride 1 and no pads; the depthwise conv has groups = channels, stride 1 or
 * 2, dilation 1 and pads <= 1. Each conv's post-op is applied to its own output. */
KILN_SHIM_SINCE_9 int kiln_shim_conv_chain_v1(kiln_shim_ctx *ctx, int64_t site, const float *x,
                                              const int64_t *x_dims, const float *const *w,
                                              const int64_t *w_dims, const float *const *bias,
                                              const float *residual, float *y,
                                              const int64_t *y_dims,
                                              const kiln_conv_chain_params_v1 *params);

/* ---- level 10 ----------------------------------------------------------------------- */

/* As kiln_shim_sdpa_v2, with q, k, v and out addressed through strides. layout (NULL: the
 * contiguous [B, H, S, D] of _v2) holds 16 int64, four per tensor in the order q, k, v, out:
 * the offset in elements of element [0, 0, 0, 0] from the pointer, then the strides in
 * elements of dims b, h and s; the last dim (D or Dv) is contiguous. Q, K and V can so be
 * the column slices of one fused [B, S, 3 H D] projection and out the [B, S, H Dv] input of
 * the output projection, with no head transposes around the call. Every entry must be >= 0
 * and each row stride at least its row's length; out must not overlap q, k or v. */
KILN_SHIM_SINCE_10 int kiln_shim_sdpa_v3(kiln_shim_ctx *ctx, int64_t site, const float *q,
                                         const float *k, const float *v, const float *mask,
                                         const int64_t *mask_strides, float *out,
                                         const int64_t *dims, const float *scale,
                                         const int64_t *layout);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SHIM_H */
