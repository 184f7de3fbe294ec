/* A hand-written stand-in for a generated model: y = x + c + d, x: [batch, 4] float32 with
 * batch in 1..8, c and d: 4 floats each in the weights blob (d = 0, at offset 0; c at 64).
 * Built with src/runtime/model_entry.c into a shared library, exactly like a generated
 * model.so. FAKE_SHIM_VERSION overrides the shim version it claims to need (for the
 * version-mismatch test); FAKE_STATIC makes x and y static [2, 4] (no symbols); FAKE_BIG
 * moves both constants past 3 GiB and drops the embedded blob (external weights only). */
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/shim.h>

#include <stdint.h>
#include <stdio.h>

#ifndef FAKE_SHIM_VERSION
#define FAKE_SHIM_VERSION KILN_SHIM_VERSION
#endif

#ifdef FAKE_BIG
#define FAKE_BASE 3221225472ull /* 3 GiB */
#else
#define FAKE_BASE 0
#endif
#define FAKE_C_OFFSET (FAKE_BASE + 64)
#define FAKE_D_OFFSET FAKE_BASE

static const kiln_symbol_desc_v1 symbols[] = {{"batch", 1, 8}};
#ifdef FAKE_STATIC
#define FAKE_NUM_SYMBOLS 0
static const int64_t io_dims[] = {2, 4};
static const int32_t io_symbols[] = {-1, -1};
#else
#define FAKE_NUM_SYMBOLS 1
static const int64_t io_dims[] = {-1, 4};
static const int32_t io_symbols[] = {0, -1};
#endif
static const int64_t c_dims[] = {4};

static const kiln_io_desc_v1 inputs[] = {{"x", {kDLFloat, 32, 1}, 2, io_dims, io_symbols}};
static const kiln_io_desc_v1 outputs[] = {{"y", {kDLFloat, 32, 1}, 2, io_dims, io_symbols}};
static const kiln_constant_desc_v1 constants[] = {
    {"c", {kDLFloat, 32, 1}, 1, c_dims, 16, FAKE_C_OFFSET},
    {"d", {kDLFloat, 32, 1}, 1, c_dims, 16, FAKE_D_OFFSET}};

/* The blob: d = {0, 0, 0, 0} and padding, then c = {10, 20, 30, 40} at byte 64. */
#ifndef FAKE_BIG
static const float blob[32]
    __attribute__((aligned(64))) = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 20, 30, 40};
#endif

static int bind_shapes(const int64_t *const *input_dims, const int32_t *input_ndims, int64_t *syms,
                       char *err, size_t err_size) {
  if (input_ndims[0] != 2 || input_dims[0][1] != 4) {
    snprintf(err, err_size, "input 'x': expected [batch, 4]");
    return KILN_ERR_SHAPE_MISMATCH;
  }
#ifdef FAKE_STATIC
  if (input_dims[0][0] != 2) {
    snprintf(err, err_size, "input 'x' dim 0: expected 2");
    return KILN_ERR_SHAPE_MISMATCH;
  }
  (void)syms;
#else
  syms[0] = input_dims[0][0];
#endif
  return 0;
}

static void output_dims(const int64_t *syms, int64_t *const *out_dims) {
#ifdef FAKE_STATIC
  (void)syms;
  out_dims[0][0] = 2;
#else
  out_dims[0][0] = syms[0];
#endif
  out_dims[0][1] = 4;
}

static int run(kiln_run_ctx *ctx, void *const *in, void *const *out, const int64_t *syms,
               void *const *consts) {
  const float *x = (const float *)in[0];
  const float *c = (const float *)consts[0];
  const float *d = (const float *)consts[1];
  float *y = (float *)out[0];
#ifdef FAKE_STATIC
  int64_t n = 8, i;
  (void)syms;
#else
  int64_t n = syms[0] * 4, i;
#endif
  /* Go through arena scratch, as generated code does for intermediates. */
  float *tmp = (float *)ctx->alloc(ctx->runner, (size_t)n * sizeof(float));
  if (!tmp || ((uintptr_t)tmp & 63) != 0) {
    snprintf(ctx->error, ctx->error_size, "fake model: bad scratch pointer");
    return KILN_ERR_INTERNAL;
  }
  for (i = 0; i < n; ++i) {
    if (x[i] != x[i]) { /* NaN: exercise the run-error path */
      snprintf(ctx->error, ctx->error_size, "fake model: NaN in input 'x' at %lld", (long long)i);
      return KILN_ERR_INVALID_ARGUMENT;
    }
    tmp[i] = x[i] + c[i % 4] + d[i % 4];
  }
  for (i = 0; i < n; ++i)
    y[i] = tmp[i];
  return 0;
}

const kiln_model_desc_v1 kiln_model_desc = {
    sizeof(kiln_model_desc_v1),
    KILN_ABI_VERSION,
    FAKE_SHIM_VERSION,
    "cpu",
    FAKE_NUM_SYMBOLS,
    1,
    1,
    2,
    symbols,
    inputs,
    outputs,
    constants,
#ifdef FAKE_BIG
    NULL,
    0,
#else
    (const uint8_t *)blob,
    sizeof blob,
#endif
    bind_shapes,
    output_dims,
    run,
    NULL, /* bind_shapes_v2: no data-dependent dims */
    NULL, /* run_v2: no sizes computed during the run */
    NULL, /* ABI 4 (CUDA models only): no fatbin, kernels or device scratch */
    0,
    0,
    NULL,
    NULL,
    NULL,
    NULL,
    "x86-64", /* the build record: baseline CPU, no extensions needed */
    "",
    1,
    0,
    "test",
};
