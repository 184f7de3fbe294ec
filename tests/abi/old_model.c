/* A model.so as kiln built it at shim level 1 / ABI 1: compiled against the released level-1
 * shim.h (released/shim_level1.h) and forwarders (released/model_entry_abi1.c), calling only
 * kiln_shim_matmul_v1, recording shim_version 1 and abi_version 1. It must keep loading and
 * running on every later libkiln_rt.
 *   y[2,4] = x[2,3] @ w[3,4] + b[4]   (w, b constants; matmul through the shim with the
 *   row-vector addend) */
#include "released/shim_level1.h"

#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <stddef.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const int64_t x_dims[] = {2, 3}, y_dims[] = {2, 4}, w_dims[] = {3, 4}, b_dims[] = {4};
static const int32_t no_symbols[] = {-1, -1};
static const kiln_io_desc_v1 inputs[] = {{"x", {kDLFloat, 32, 1}, 2, x_dims, no_symbols}};
static const kiln_io_desc_v1 outputs[] = {{"y", {kDLFloat, 32, 1}, 2, y_dims, no_symbols}};
static const kiln_constant_desc_v1 constants[] = {{"w", {kDLFloat, 32, 1}, 2, w_dims, 48, 0},
                                                  {"b", {kDLFloat, 32, 1}, 1, b_dims, 16, 64}};
static const float blob[32] __attribute__((aligned(64))) = {1,  2,  3, 4, 5, 6, 7,    8,     9,  10,
                                                            11, 12, 0, 0, 0, 0, 0.5f, 0.25f, -1, 2};

static int bind_shapes(const int64_t *const *input_dims, const int32_t *input_ndims, int64_t *syms,
                       char *err, size_t err_size) {
  (void)syms;
  if (input_ndims[0] != 2 || input_dims[0][0] != 2 || input_dims[0][1] != 3) {
    snprintf(err, err_size, "input 'x': expected [2, 3]");
    return KILN_ERR_SHAPE_MISMATCH;
  }
  return 0;
}

static void output_dims(const int64_t *syms, int64_t *const *out_dims) {
  (void)syms;
  out_dims[0][0] = 2;
  out_dims[0][1] = 4;
}

static int run(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *syms,
               void *const *consts) {
  kiln_matmul_params_v1 p;
  (void)syms;
  memset(&p, 0, sizeof p);
  p.batch = 1;
  p.m = 2;
  p.n = 4;
  p.k = 3;
  p.lda = 3;
  p.ldb = 4;
  p.ldc = 4;
  p.post_op = KILN_POST_NONE;
  p.alpha = 1;
  p.beta = 1;
  p.addend_kind = 1;
  return kiln_shim_matmul_v1(ctx->runner, 0, (const float *)in[0], (const float *)consts[0],
                             (const float *)consts[1], (float *)out[0], &p);
}

/* An ABI-1 descriptor ends before bind_shapes_v2 (appended in ABI 2): its struct_size says
 * so, and the runtime must not read past it. */
const kiln_model_desc_v1 kiln_model_desc = {
    offsetof(kiln_model_desc_v1, bind_shapes_v2),
    1 /* ABI */,
    1 /* shim level */,
    "cpu",
    0,
    1,
    1,
    2,
    NULL,
    inputs,
    outputs,
    constants,
    (const uint8_t *)blob,
    sizeof blob,
    bind_shapes,
    output_dims,
    run,
    NULL, /* not part of an ABI-1 descriptor (nor the rest) */
    NULL,
    NULL,
    0,
    0,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    0,
    0,
    NULL};
