/* A hand-written stand-in for a generated CUDA model.so (device "cuda", ABI 4):
 * y = 2 x + w, x and y [batch, 256] float32 with batch in 1..64, w a [256] float32 constant
 * (w[i] = i / 2). The wrapper below does what generated code does: takes device scratch from
 * base.alloc, fills it, launches kiln_fake_scale_add into it and copies it to y, all on
 * ctx->stream through ctx->drv. The fatbin (scale_add.cu, built by nvcc) is embedded with
 * .incbin. Used by the mock-driver test (tests/runtime/cuda) and the GPU smoke test. */
#include <kiln/model.h>
#include <kiln/model_desc.h>
#include <kiln/shim.h>

#include <stdint.h>
#include <stdio.h>

#include "fatbin_size.h" /* KILN_FAKE_FATBIN_SIZE, written by the build */

__asm__(".section .rodata\n"
        ".balign 64\n"
        ".globl kiln_fake_fatbin\n"
        ".hidden kiln_fake_fatbin\n"
        "kiln_fake_fatbin:\n"
        ".incbin \"" KILN_FAKE_FATBIN_PATH "\"\n"
        ".byte 0\n"
        ".previous\n");
extern const uint8_t kiln_fake_fatbin[] __attribute__((visibility("hidden")));

#define WIDTH 256

static const kiln_symbol_desc_v1 symbols[] = {{"batch", 1, 64}};
static const int64_t io_dims[] = {-1, WIDTH};
static const int32_t io_symbols[] = {0, -1};
static const int64_t w_dims[] = {WIDTH};
static const kiln_io_desc_v1 inputs[] = {{"x", {kDLFloat, 32, 1}, 2, io_dims, io_symbols}};
static const kiln_io_desc_v1 outputs[] = {{"y", {kDLFloat, 32, 1}, 2, io_dims, io_symbols}};
static const kiln_constant_desc_v1 constants[] = {
    {"w", {kDLFloat, 32, 1}, 1, w_dims, WIDTH * 4, 0}};
static const char *const kernel_names[] = {"kiln_fake_scale_add"};

#define H(i) (i) * 0.5f
#define H4(i) H(i), H(i + 1), H(i + 2), H(i + 3)
#define H16(i) H4(i), H4(i + 4), H4(i + 8), H4(i + 12)
#define H64(i) H16(i), H16(i + 16), H16(i + 32), H16(i + 48)
static const float blob[WIDTH] __attribute__((aligned(64))) = {H64(0), H64(64), H64(128), H64(192)};

static int bind_shapes(const int64_t *const *input_dims, const int32_t *input_ndims, int64_t *syms,
                       char *err, size_t err_size) {
  if (input_ndims[0] != 2 || input_dims[0][1] != WIDTH) {
    snprintf(err, err_size, "input 'x': expected [batch, %d]", WIDTH);
    return KILN_ERR_SHAPE_MISMATCH;
  }
  syms[0] = input_dims[0][0];
  return 0;
}

static void output_dims(const int64_t *syms, int64_t *const *out_dims) {
  out_dims[0][0] = syms[0];
  out_dims[0][1] = WIDTH;
}

static uint64_t scratch_bytes(const int64_t *syms) {
  return (uint64_t)syms[0] * WIDTH * sizeof(float);
}

#define KILN_CU(call)                                                                              \
  do {                                                                                             \
    int st_ = (call);                                                                              \
    if (st_) {                                                                                     \
      snprintf(base->error, base->error_size, "%s failed: %s", #call, drv->error_string(st_));     \
      return KILN_ERR_DEVICE;                                                                      \
    }                                                                                              \
  } while (0)

static int run(kiln_run_ctx *base, void *const *in, void *const *out, const int64_t *syms,
               void *const *consts) {
  const kiln_run_ctx_cuda *ctx = (const kiln_run_ctx_cuda *)base;
  const kiln_cuda_driver_v1 *drv = ctx->drv;
  int64_t n = syms[0] * WIDTH;
  size_t bytes = (size_t)n * sizeof(float);
  void *t = base->alloc(base->runner, bytes);
  if (!t) {
    snprintf(base->error, base->error_size, "device scratch exhausted (%zu bytes)", bytes);
    return KILN_ERR_OUT_OF_MEMORY;
  }
  void *x = in[0], *w = consts[0], *y = out[0];
  KILN_CU(drv->fill(t, 0, bytes, ctx->stream));
  {
    uint32_t g0 = (uint32_t)((n + 255) / 256);
    if (g0) {
      void *a[] = {&x, &w, &t, &n};
      KILN_CU(drv->launch(ctx->functions[0], g0, 1, 1, 256, 1, 1, 0, ctx->stream, a));
    }
  }
  KILN_CU(drv->copy(y, t, bytes, ctx->stream));
  return 0;
}

const kiln_model_desc_v1 kiln_model_desc __attribute__((visibility("hidden"))) = {
    sizeof(kiln_model_desc_v1),
    KILN_ABI_VERSION,
    0, /* no shims */
    "cuda",
    1,
    1,
    1,
    1,
    symbols,
    inputs,
    outputs,
    constants,
    (const uint8_t *)blob,
    sizeof blob,
    bind_shapes,
    output_dims,
    run,
    NULL, /* bind_shapes_v2 */
    NULL, /* run_v2 */
    kiln_fake_fatbin,
    KILN_FAKE_FATBIN_SIZE,
    1,
    kernel_names,
    scratch_bytes,
    NULL, /* no input is read on the host */
    "sm_90",
    "x86-64", /* build record: baseline host code */
    "",
    1,
    0,
    "test",
};
