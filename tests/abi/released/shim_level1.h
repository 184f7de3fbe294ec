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

/* Highest shim version this header declares; model.so records the version it needs. */
#define KILN_SHIM_VERSION 1

/* Per-runner state (primitive caches); obtained from kiln_run_ctx.runner. */
typedef void kiln_shim_ctx;

/* Fused elementwise operation applied after conv/matmul (oneDNN post-op). */
typedef enum kiln_post_op { KILN_POST_NONE = 0, KILN_POST_RELU = 1, KILN_POST_CLIP = 2 } kiln_post_op;

typedef struct kiln_conv_params_v1 {
  int32_t spatial_rank;  /* 1, 2 or 3 */
  int32_t post_op;       /* kiln_post_op, applied after bias and residual add */
  int64_t groups;
  int64_t strides[3];
  int64_t dilations[3];  /* ONNX convention: 1 = dense */
  int64_t pads_begin[3];
  int64_t pads_end[3];
  float clip_min, clip_max;
} kiln_conv_params_v1;

/* y = post_op(conv(x, w) + bias + residual). float32, plain NC[D]HW / OI[D]HW layouts.
 * x_dims: N,C,spatial...; w_dims: O,C/groups,kernel...; y_dims: N,O,spatial...
 * bias (length O) and residual (shape of y) are optional. site identifies the call site
 * so primitives are created once per runner and shape. */
int kiln_shim_conv_v1(kiln_shim_ctx* ctx, int64_t site, const float* x, const int64_t* x_dims,
                      const float* w, const int64_t* w_dims, const float* bias,
                      const float* residual, float* y, const int64_t* y_dims,
                      const kiln_conv_params_v1* params);

typedef struct kiln_matmul_params_v1 {
  int64_t batch;         /* number of matrices */
  int64_t m, n, k;
  int64_t a_batch_stride, b_batch_stride, c_batch_stride; /* elements; 0 = broadcast */
  int64_t lda, ldb, ldc; /* row strides in elements of A (m x k or k x m), B, C */
  int32_t trans_a, trans_b;
  int32_t post_op;       /* kiln_post_op */
  float alpha;           /* scales A*B */
  float beta;            /* scales addend */
  float clip_min, clip_max;
  int32_t addend_kind;   /* 0 none, 1 row vector (n), 2 full (m x n, ld = ldc, per batch) */
  int32_t reserved;
} kiln_matmul_params_v1;

/* C = post_op(alpha * op(A) * op(B) + beta * addend), float32, batched. */
int kiln_shim_matmul_v1(kiln_shim_ctx* ctx, int64_t site, const float* a, const float* b,
                        const float* addend, float* c, const kiln_matmul_params_v1* params);

#ifdef __cplusplus
}
#endif
#endif /* KILN_SHIM_H */
