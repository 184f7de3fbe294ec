/* Frozen ABI of kiln: every released model.h and shim.h function, struct layout and enum
 * value, checked against the current headers at compile time.
 *
 * Each released function is assigned to a pointer of its frozen type: with -Werror a changed
 * parameter or return type is an incompatible-pointer-types error, and a removed function a
 * link error (this program links libkiln_rt and a model library). Struct layouts are pinned
 * with _Static_assert on sizeof and offsetof, enums on their values. At run time the program
 * checks that KILN_SHIM_FUNCTIONS lists exactly the released shim functions with their
 * levels. New functions are added here when released; nothing here is ever edited.
 * C11 (for _Static_assert); the headers themselves are C99. */
/* As generated code does: level >= 4 shims are weak references (shim.h), so this program links
 * while libkiln_rt does not export them yet; their types are checked all the same. */
#define KILN_SHIM_WEAK_FROM_LEVEL 4
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define FROZEN(name, ret, params) ret(*const frozen_##name) params = name;
/* Type check only, no reference: for declared functions no library here defines yet (the
 * ABI-4 model.h entry points; model_entry.c does not forward them yet). */
#define FROZEN_DECL(name, ret, params)                                                             \
  static ret(*frozen_##name) params;                                                               \
  _Static_assert(sizeof(frozen_##name = name) == sizeof(frozen_##name), #name);

/* ---- model.h, ABI 1 ---- */
FROZEN(kiln_container_options_init, void, (kiln_container_options *))
FROZEN(kiln_last_error, const char *, (void))
FROZEN(kiln_abi_version, uint32_t, (void))
FROZEN(kiln_container_create, int, (const kiln_container_options *, kiln_container **))
FROZEN(kiln_container_destroy, int, (kiln_container *))
FROZEN(kiln_num_inputs, int, (const kiln_container *, int32_t *))
FROZEN(kiln_num_outputs, int, (const kiln_container *, int32_t *))
FROZEN(kiln_input_info, int, (const kiln_container *, int32_t, kiln_tensor_info *))
FROZEN(kiln_output_info, int, (const kiln_container *, int32_t, kiln_tensor_info *))
FROZEN(kiln_run, int, (kiln_container *, const DLTensor *, int32_t, DLTensor *, int32_t))
FROZEN(kiln_output_dims, int, (kiln_container *, const DLTensor *, int32_t, int64_t *const *))
FROZEN(kiln_run_alloc, int,
       (kiln_container *, const DLTensor *, int32_t, DLManagedTensor **, int32_t))
/* ---- model.h, ABI 2 ---- */
FROZEN(kiln_run_minimal, int, (kiln_container *, void *const *, void *const *))
FROZEN(kiln_num_constants, int, (const kiln_container *, int32_t *))
FROZEN(kiln_constant_info, int, (const kiln_container *, int32_t, kiln_tensor_info *))
FROZEN(kiln_update_constants, int,
       (kiln_container *, int32_t, const char *const *, const DLTensor *, int32_t, uint32_t))
FROZEN(kiln_swap_constants, int, (kiln_container *))
FROZEN(kiln_free_inactive_constants, int, (kiln_container *))
FROZEN(kiln_read_constant, int, (kiln_container *, int32_t, const char *, DLTensor *))
/* ---- model.h, ABI 4 ---- */
FROZEN_DECL(kiln_run_options_init, void, (kiln_run_options *))
FROZEN_DECL(kiln_run_v2, int,
            (kiln_container *, const kiln_run_options *, const DLTensor *, int32_t, DLTensor *,
             int32_t))
FROZEN_DECL(kiln_run_alloc_v2, int,
            (kiln_container *, const kiln_run_options *, const DLTensor *, int32_t,
             DLManagedTensor **, int32_t))
FROZEN_DECL(kiln_alloc_tensor, int,
            (kiln_container *, DLDataType, int32_t, const int64_t *, DLManagedTensor **))
FROZEN_DECL(kiln_copy_tensor, int, (kiln_container *, DLTensor *, const DLTensor *))

/* ---- shim level 1 ---- */
FROZEN(kiln_shim_conv_v1, int,
       (kiln_shim_ctx *, int64_t, const float *, const int64_t *, const float *, const int64_t *,
        const float *, const float *, float *, const int64_t *, const kiln_conv_params_v1 *))
FROZEN(kiln_shim_matmul_v1, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *, const float *, float *,
        const kiln_matmul_params_v1 *))
/* ---- shim level 2 ---- */
FROZEN(kiln_shim_conv_v2, int,
       (kiln_shim_ctx *, int64_t, const float *, const int64_t *, const float *, const int64_t *,
        const float *, const float *, float *, const int64_t *, const kiln_conv_params_v1 *,
        int32_t))
FROZEN(kiln_shim_scatter_elements_v1, int,
       (kiln_shim_ctx *, int64_t, int32_t, int32_t, const void *, const int64_t *, int32_t,
        const int64_t *, const int64_t *, const void *, int32_t, int32_t, void *))
FROZEN(kiln_shim_scatter_nd_v1, int,
       (kiln_shim_ctx *, int64_t, int32_t, int32_t, const void *, const int64_t *, int32_t,
        const int64_t *, const int64_t *, int32_t, const void *, int32_t, void *))
FROZEN(kiln_shim_sdpa_v1, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *, const float *, const float *,
        const int64_t *, float *, const int64_t *, float))
FROZEN(kiln_shim_sdpa_v2, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *, const float *, const float *,
        const int64_t *, float *, const int64_t *, const float *))
/* ---- shim level 3 ---- */
FROZEN(kiln_shim_nonzero_v1, int,
       (kiln_shim_ctx *, int64_t, const uint8_t *, const int64_t *, int32_t, int64_t *, int64_t *))
FROZEN(kiln_shim_unique_v1, int,
       (kiln_shim_ctx *, int64_t, int32_t, int32_t, const void *, const int64_t *, int32_t, void *,
        int64_t *, int64_t *, int64_t *, int64_t *))
FROZEN(kiln_shim_nms_v1, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *, const int64_t *, const int64_t *,
        const float *, const float *, int32_t, int64_t *, int64_t *))
FROZEN(kiln_shim_to_string_v1, int,
       (kiln_shim_ctx *, int64_t, int32_t, int32_t, const void *, int64_t, const char **))
FROZEN(kiln_shim_from_string_v1, int,
       (kiln_shim_ctx *, int64_t, const char *const *, int64_t, int32_t, int32_t, void *))
FROZEN(kiln_shim_string_normalizer_v1, int,
       (kiln_shim_ctx *, int64_t, const char *const *, int64_t, int32_t, int32_t,
        const char *const *, int64_t, const char **, int64_t *))
/* ---- shim level 4 (levels >= 4 are weak references, see above) ---- */
FROZEN(kiln_shim_cuda_matmul_v1, int,
       (kiln_shim_ctx *, int64_t, const void *, const void *, const void *, void *,
        const kiln_cuda_matmul_params_v1 *))
FROZEN(kiln_shim_cuda_conv_v1, int,
       (kiln_shim_ctx *, int64_t, const void *, const int64_t *, const void *, const int64_t *,
        const void *, const void *, void *, const int64_t *, const kiln_conv_params_v1 *, int32_t,
        uint32_t))

/* ---- shim level 5 ---- */
FROZEN(kiln_shim_string_lookup_v1, int,
       (kiln_shim_ctx *, int64_t, const char *const *, int64_t, const char *const *, int64_t,
        int64_t *))
/* ---- shim level 6 ---- */
FROZEN(kiln_shim_string_concat_v1, int,
       (kiln_shim_ctx *, int64_t, const char *const *, const char *const *, int64_t,
        const char **))
FROZEN(kiln_shim_string_split_v1, int,
       (kiln_shim_ctx *, int64_t, const char *const *, int64_t, const char *, int64_t, int64_t,
        const char **, int64_t *, int64_t *))
FROZEN(kiln_shim_regex_full_match_v1, int,
       (kiln_shim_ctx *, int64_t, const char *, const char *const *, int64_t, uint8_t *))
FROZEN(kiln_shim_image_decode_v1, int,
       (kiln_shim_ctx *, int64_t, const uint8_t *, int64_t, int32_t, int64_t, int64_t, uint8_t *,
        int64_t *, int64_t *))
/* ---- shim level 7 ---- */
FROZEN(kiln_shim_matmul_v2, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *, const float *, const float *,
        float *, const kiln_matmul_params_v1 *))
FROZEN(kiln_shim_cuda_matmul_v2, int,
       (kiln_shim_ctx *, int64_t, const void *, const void *, const void *, const void *, void *,
        const kiln_cuda_matmul_params_v1 *))
/* ---- shim level 8 ---- */
FROZEN(kiln_shim_matmul_multi_v1, int,
       (kiln_shim_ctx *, int64_t, const float *, const float *const *, const float *const *,
        float *, const kiln_matmul_multi_params_v1 *))

/* ---- layouts (x86-64 / aarch64 LP64) ---- */
#define LAYOUT(T, size) _Static_assert(sizeof(T) == (size), "sizeof(" #T ") changed");
#define FIELD(T, f, off) _Static_assert(offsetof(T, f) == (off), #T "." #f " moved");
LAYOUT(kiln_container_options, 64)
FIELD(kiln_container_options, struct_size, 0)
FIELD(kiln_container_options, num_runners, 8)
FIELD(kiln_container_options, threads_per_run, 12)
FIELD(kiln_container_options, device, 16)
FIELD(kiln_container_options, weights_path, 24)
FIELD(kiln_container_options, flags, 32)
FIELD(kiln_container_options, reserved, 36)
LAYOUT(kiln_tensor_info, 56)
FIELD(kiln_tensor_info, name, 8)
FIELD(kiln_tensor_info, dtype, 16)
FIELD(kiln_tensor_info, ndim, 20)
FIELD(kiln_tensor_info, dims, 24)
FIELD(kiln_tensor_info, dim_names, 32)
FIELD(kiln_tensor_info, dim_min, 40)
FIELD(kiln_tensor_info, dim_max, 48)
LAYOUT(kiln_symbol_desc_v1, 24)
LAYOUT(kiln_io_desc_v1, 32)
LAYOUT(kiln_constant_desc_v1, 40)
LAYOUT(kiln_run_ctx, 40)
/* Append-only: ABI 1 ended at 112 bytes (run at 104); ABI 2 appended bind_shapes_v2,
 * ABI 3 run_v2 (128 bytes), ABI 4 the CUDA fields (184 bytes); then the build record
 * (cpu_isa ... kiln_version, 216 bytes), read only when struct_size covers it. */
LAYOUT(kiln_model_desc_v1, 216)
FIELD(kiln_model_desc_v1, cpu_isa, 184)
FIELD(kiln_model_desc_v1, cpu_features, 192)
FIELD(kiln_model_desc_v1, num_kernels, 200)
FIELD(kiln_model_desc_v1, num_extern_calls, 204)
FIELD(kiln_model_desc_v1, kiln_version, 208)
FIELD(kiln_model_desc_v1, bind_shapes_v2, 112)
FIELD(kiln_model_desc_v1, run_v2, 120)
FIELD(kiln_model_desc_v1, cuda_fatbin, 128)
FIELD(kiln_model_desc_v1, cuda_fatbin_size, 136)
FIELD(kiln_model_desc_v1, num_cuda_kernels, 144)
FIELD(kiln_model_desc_v1, cuda_kernel_names, 152)
FIELD(kiln_model_desc_v1, scratch_bytes, 160)
FIELD(kiln_model_desc_v1, input_data_on_host, 168)
FIELD(kiln_model_desc_v1, cuda_arch, 176)
FIELD(kiln_model_desc_v1, shim_version, 12)
FIELD(kiln_model_desc_v1, weights, 72)
FIELD(kiln_model_desc_v1, bind_shapes, 88)
FIELD(kiln_model_desc_v1, run, 104)
LAYOUT(kiln_conv_params_v1, 120)
FIELD(kiln_conv_params_v1, clip_min, 112)
LAYOUT(kiln_matmul_params_v1, 120)
FIELD(kiln_matmul_params_v1, trans_a, 80)
FIELD(kiln_matmul_params_v1, alpha, 92)
FIELD(kiln_matmul_params_v1, addend_kind, 108)
/* shim level 8 */
LAYOUT(kiln_matmul_multi_params_v1, 104)
FIELD(kiln_matmul_multi_params_v1, ldc, 24)
FIELD(kiln_matmul_multi_params_v1, count, 32)
FIELD(kiln_matmul_multi_params_v1, n, 40)
/* ABI 4 / shim level 4 */
LAYOUT(kiln_run_options, 40)
FIELD(kiln_run_options, struct_size, 0)
FIELD(kiln_run_options, stream, 8)
FIELD(kiln_run_options, flags, 16)
FIELD(kiln_run_options, reserved, 20)
LAYOUT(kiln_cuda_driver_v1, 48)
FIELD(kiln_cuda_driver_v1, struct_size, 0)
FIELD(kiln_cuda_driver_v1, launch, 8)
FIELD(kiln_cuda_driver_v1, copy, 16)
FIELD(kiln_cuda_driver_v1, read_to_host, 24)
FIELD(kiln_cuda_driver_v1, fill, 32)
FIELD(kiln_cuda_driver_v1, error_string, 40)
LAYOUT(kiln_run_ctx_cuda, 72)
FIELD(kiln_run_ctx_cuda, base, 0)
FIELD(kiln_run_ctx_cuda, struct_size, 40)
FIELD(kiln_run_ctx_cuda, stream, 48)
FIELD(kiln_run_ctx_cuda, functions, 56)
FIELD(kiln_run_ctx_cuda, drv, 64)
LAYOUT(kiln_cuda_matmul_params_v1, 152)
FIELD(kiln_cuda_matmul_params_v1, mm, 0)
FIELD(kiln_cuda_matmul_params_v1, elem_type, 120)
FIELD(kiln_cuda_matmul_params_v1, flags, 124)
FIELD(kiln_cuda_matmul_params_v1, reserved, 128)

/* ---- enum values ---- */
#define VALUE(e, v) _Static_assert((e) == (v), #e " changed");
VALUE(KILN_OK, 0)
VALUE(KILN_ERR_INVALID_ARGUMENT, 1)
VALUE(KILN_ERR_SHAPE_MISMATCH, 2)
VALUE(KILN_ERR_DTYPE_MISMATCH, 3)
VALUE(KILN_ERR_DEVICE, 4)
VALUE(KILN_ERR_OUT_OF_MEMORY, 5)
VALUE(KILN_ERR_VERSION_MISMATCH, 6)
VALUE(KILN_ERR_NOT_FOUND, 7)
VALUE(KILN_ERR_UNSUPPORTED, 8)
VALUE(KILN_ERR_INTERNAL, 9)
VALUE(KILN_ERR_INVALID_STATE, 10)
VALUE(KILN_CONSTANTS_ACTIVE, 0)
VALUE(KILN_CONSTANTS_INACTIVE, 1)
VALUE(KILN_UPDATE_REQUIRE_ALL, 1u)
VALUE(KILN_POST_NONE, 0)
VALUE(KILN_POST_RELU, 1)
VALUE(KILN_POST_CLIP, 2)
VALUE(KILN_POST_GELU_ERF, 3)
VALUE(KILN_POST_GELU_TANH, 4)
VALUE(KILN_MATMUL_MULTI_MAX, 8)
VALUE(KILN_LAYOUT_CHANNELS_FIRST, 0)
VALUE(KILN_LAYOUT_CHANNELS_LAST, 1)
VALUE(KILN_ELEM_F32, 0)
VALUE(KILN_ELEM_F64, 1)
VALUE(KILN_ELEM_F16, 2)
VALUE(KILN_ELEM_BF16, 3)
VALUE(KILN_ELEM_I8, 4)
VALUE(KILN_ELEM_I16, 5)
VALUE(KILN_ELEM_I32, 6)
VALUE(KILN_ELEM_I64, 7)
VALUE(KILN_ELEM_U8, 8)
VALUE(KILN_ELEM_U16, 9)
VALUE(KILN_ELEM_U32, 10)
VALUE(KILN_ELEM_U64, 11)
VALUE(KILN_ELEM_BOOL, 12)
VALUE(KILN_REDUCE_NONE, 0)
VALUE(KILN_REDUCE_ADD, 1)
VALUE(KILN_REDUCE_MUL, 2)
VALUE(KILN_REDUCE_MIN, 3)
VALUE(KILN_REDUCE_MAX, 4)
VALUE(KILN_RUN_NONE, 0u)
VALUE(KILN_RUN_SYNC, 1u)
VALUE(KILN_CUDA_ALLOW_TF32, 1u)
_Static_assert(KILN_ABI_VERSION >= 4, "KILN_ABI_VERSION went backwards");
_Static_assert(KILN_SHIM_VERSION >= 8, "KILN_SHIM_VERSION went backwards");

/* The released shim functions and their levels, in KILN_SHIM_FUNCTIONS order. */
static const struct {
  const char *name;
  int level;
} kReleased[] = {{"kiln_shim_conv_v1", 1},
                 {"kiln_shim_matmul_v1", 1},
                 {"kiln_shim_conv_v2", 2},
                 {"kiln_shim_scatter_elements_v1", 2},
                 {"kiln_shim_scatter_nd_v1", 2},
                 {"kiln_shim_sdpa_v1", 2},
                 {"kiln_shim_sdpa_v2", 2},
                 {"kiln_shim_nonzero_v1", 3},
                 {"kiln_shim_unique_v1", 3},
                 {"kiln_shim_nms_v1", 3},
                 {"kiln_shim_to_string_v1", 3},
                 {"kiln_shim_from_string_v1", 3},
                 {"kiln_shim_string_normalizer_v1", 3},
                 {"kiln_shim_cuda_matmul_v1", 4},
                 {"kiln_shim_cuda_conv_v1", 4},
                 {"kiln_shim_string_lookup_v1", 5},
                 {"kiln_shim_string_concat_v1", 6},
                 {"kiln_shim_string_split_v1", 6},
                 {"kiln_shim_regex_full_match_v1", 6},
                 {"kiln_shim_image_decode_v1", 6},
                 {"kiln_shim_matmul_v2", 7},
                 {"kiln_shim_cuda_matmul_v2", 7},
                 {"kiln_shim_matmul_multi_v1", 8}};

#define LISTED(fn, level) {#fn, level},
static const struct {
  const char *name;
  int level;
} kListed[] = {KILN_SHIM_FUNCTIONS(LISTED)};

int main(void) {
  size_t nr = sizeof kReleased / sizeof kReleased[0], nl = sizeof kListed / sizeof kListed[0], i;
  int bad = 0;
  if (nl < nr) {
    fprintf(stderr, "KILN_SHIM_FUNCTIONS has %zu entries, fewer than the %zu released\n", nl, nr);
    return 1;
  }
  for (i = 0; i < nr; ++i)
    if (strcmp(kReleased[i].name, kListed[i].name) != 0 || kReleased[i].level != kListed[i].level) {
      fprintf(stderr, "KILN_SHIM_FUNCTIONS[%zu] is %s (level %d), released as %s (level %d)\n", i,
              kListed[i].name, kListed[i].level, kReleased[i].name, kReleased[i].level);
      bad = 1;
    }
  for (; i < nl; ++i)
    if (kListed[i].level <= kReleased[nr - 1].level) {
      fprintf(stderr, "%s was added at released level %d; new functions need a new level\n",
              kListed[i].name, kListed[i].level);
      bad = 1;
    }
  if (kiln_abi_version() != KILN_ABI_VERSION || kiln_rt_shim_version() != KILN_SHIM_VERSION) {
    fprintf(stderr, "runtime reports ABI %u shim %u, headers say %d / %d\n", kiln_abi_version(),
            kiln_rt_shim_version(), KILN_ABI_VERSION, KILN_SHIM_VERSION);
    bad = 1;
  }
  printf("abi: %zu released shim functions, ABI %d, shim level %d: %s\n", nr, KILN_ABI_VERSION,
         KILN_SHIM_VERSION, bad ? "CHANGED" : "unchanged");
  return bad;
}
