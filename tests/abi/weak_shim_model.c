/* A model.so as kiln generates it for a CUDA model at shim level 4: the descriptor records
 * shim_version 4 and the code calls kiln_shim_cuda_matmul_v1. Built twice (CMakeLists.txt):
 * with KILN_SHIM_WEAK_FROM_LEVEL=4, as the generated wrapper defines it, and without (the
 * negative control, whose dlopen must fail on an older runtime). It also takes the address of
 * every function in KILN_SHIM_FUNCTIONS, so that a level >= 4 function whose declaration
 * lacks its KILN_SHIM_SINCE_N attribute breaks dlopen on the level-3 runtime too. */
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/shim.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef void (*any_fn)(void);
#define ADDRESS(fn, level) (any_fn) fn,
static any_fn const shims[] = {KILN_SHIM_FUNCTIONS(ADDRESS)};

/* Test hook: writes 1 for each KILN_SHIM_FUNCTIONS entry the loaded runtime lacks (its weak
 * reference resolved to NULL), 0 otherwise; returns the number of entries. */
__attribute__((visibility("default"))) int weak_shim_model_missing(uint8_t *missing, int max) {
  int n = (int)(sizeof shims / sizeof shims[0]), i;
  for (i = 0; i < n && i < max; ++i)
    missing[i] = shims[i] == NULL;
  return n;
}

static const int64_t dims[] = {2, 2};
static const int32_t no_symbols[] = {-1, -1};
static const kiln_io_desc_v1 inputs[] = {{"a", {kDLFloat, 32, 1}, 2, dims, no_symbols}};
static const kiln_io_desc_v1 outputs[] = {{"c", {kDLFloat, 32, 1}, 2, dims, no_symbols}};

static int bind_shapes(const int64_t *const *input_dims, const int32_t *input_ndims, int64_t *syms,
                       char *err, size_t err_size) {
  (void)input_dims, (void)input_ndims, (void)syms, (void)err, (void)err_size;
  return 0;
}

static void output_dims(const int64_t *syms, int64_t *const *out_dims) {
  (void)syms;
  out_dims[0][0] = out_dims[0][1] = 2;
}

/* c = a * a through cuBLASLt. Never reached on a level-3 runtime: create refuses the model. */
static int run(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *syms,
               void *const *consts) {
  kiln_cuda_matmul_params_v1 p;
  (void)syms, (void)consts;
  memset(&p, 0, sizeof p);
  p.mm.batch = 1;
  p.mm.m = p.mm.n = p.mm.k = 2;
  p.mm.lda = p.mm.ldb = p.mm.ldc = 2;
  p.mm.alpha = 1;
  p.elem_type = KILN_ELEM_F32;
  return kiln_shim_cuda_matmul_v1(ctx->runner, 0, in[0], in[0], NULL, out[0], &p);
}

const kiln_model_desc_v1 kiln_model_desc = {sizeof(kiln_model_desc_v1),
                                            KILN_ABI_VERSION,
                                            4 /* shim level: kiln_shim_cuda_matmul_v1 */,
                                            "cuda",
                                            0,
                                            1,
                                            1,
                                            0,
                                            NULL,
                                            inputs,
                                            outputs,
                                            NULL,
                                            NULL,
                                            0,
                                            bind_shapes,
                                            output_dims,
                                            run,
                                            NULL,
                                            NULL,
                                            NULL,
                                            0,
                                            0,
                                            NULL,
                                            NULL,
                                            NULL,
                                            "sm_90",
                                            "x86-64",
                                            "",
                                            0,
                                            0,
                                            "test"};
