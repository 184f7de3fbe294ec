// A CUDA container's run: reserve device scratch, enqueue the model on the stream, record the
// runner's done event, and keep the constants pinned until that event completes. Also the
// level-4 shim entry points, which forward to the plugin's per-runner libraries.
#include "error.h"
#include "run_internal.h"

#include <kiln/runtime.h>

#include <cstring>
#include <exception>

namespace kiln::rt {

int executeCuda(kiln_container *c, Runner *r, void *const *in, void *const *out,
                const RunSpec &spec) {
  const kiln_model_desc_v1 &d = *c->desc;
  const kiln_device_plugin_v1 &p = *r->plugin;
  r->error[0] = '\0';
  uint64_t scratch = d.scratch_bytes ? d.scratch_bytes(r->scratch.symbols.data()) : 0;
  uint32_t flags = (spec.ownStream ? KILN_PLUGIN_OWN_STREAM : 0u) |
                   (d.shim_version >= 4 ? KILN_PLUGIN_LIBRARIES : 0u);
  void *stream = nullptr;
  char err[512] = {};
  if (int st = p.run_begin(r->cuda, spec.stream, flags, scratch, &stream, err, sizeof err))
    return fail(st, "starting the run on cuda:%d: %s", c->device->ordinal, err);

  // The pin outlives this call: it moves to the runner's pendingPins below and is dropped
  // once the done event recorded by run_end has completed.
  int slot = c->pinConstants();
  const ConstantSet &constants = *c->slots[slot];
  r->useConstants(constants.base, constants.size, constants.token);
  kiln_run_ctx_cuda ctx{};
  ctx.base = kiln_run_ctx{r, cudaRunnerAlloc, 1, r->error, Runner::kErrorSize};
  ctx.struct_size = sizeof ctx;
  ctx.stream = stream;
  ctx.functions = c->device->functions;
  ctx.drv = p.driver();
  int st;
  try {
    auto *base = reinterpret_cast<kiln_run_ctx *>(&ctx);
    st = hasLateDims(d) ? d.run_v2(base, in, out, r->scratch.symbols.data(), constants.ptrs.data())
                        : d.run(base, in, out, r->scratch.symbols.data(), constants.ptrs.data());
  } catch (const std::exception &e) {
    st = fail(KILN_ERR_INTERNAL, "model run threw: %s", e.what());
  }
  int endSt;
  {
    // Under pinMu: a writer draining a slot (reclaimPins) then sees either the previous run's
    // event and pins or this run's, never this run's pin with the previous run's event.
    std::lock_guard<std::mutex> lock(r->pinMu);
    endSt = p.run_end(r->cuda, err, sizeof err);
    ++r->pendingPins[slot];
  }
  // A failed run may have enqueued part of its work: finish it before the caller frees
  // anything (kiln_run_alloc frees its outputs). Synchronous runs wait here too.
  if (st != KILN_OK || endSt != KILN_OK || spec.sync) c->reclaimPins(r, true);
  if (st != KILN_OK) return runStatus(st, *r);
  if (endSt != KILN_OK)
    return fail(endSt, "finishing the run on cuda:%d: %s", c->device->ordinal, err);
  return KILN_OK;
}

} // namespace kiln::rt

using namespace kiln::rt;

namespace {

// The CUDA runner behind a shim ctx, or nullptr with a message recorded.
Runner *cudaRunner(kiln_shim_ctx *ctx, const char *fn) {
  auto *r = static_cast<Runner *>(ctx);
  if (!r) {
    fail(KILN_ERR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
    return nullptr;
  }
  if (!r->cuda) {
    fail(KILN_ERR_DEVICE, "%s: ctx is a CPU runner; this shim runs only inside a CUDA model", fn);
    return nullptr;
  }
  return r;
}

} // namespace

extern "C" {

KILN_RT_API int kiln_shim_cuda_matmul_v1(kiln_shim_ctx *ctx, int64_t site, const void *a,
                                         const void *b, const void *addend, void *c,
                                         const kiln_cuda_matmul_params_v1 *params) {
  const char *fn = "kiln_shim_cuda_matmul_v1";
  Runner *r = cudaRunner(ctx, fn);
  if (!r) return KILN_ERR_DEVICE;
  if (!params) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  char err[512] = {};
  int st = r->plugin->matmul(r->cuda, site, a, b, addend, c, params, err, sizeof err);
  return st ? fail(st, "%s (site %lld): %s", fn, static_cast<long long>(site), err) : KILN_OK;
}

KILN_RT_API int kiln_shim_cuda_matmul_v2(kiln_shim_ctx *ctx, int64_t site, const void *a,
                                         const void *b, const void *addend, const void *residual,
                                         void *c, const kiln_cuda_matmul_params_v1 *params) {
  const char *fn = "kiln_shim_cuda_matmul_v2";
  Runner *r = cudaRunner(ctx, fn);
  if (!r) return KILN_ERR_DEVICE;
  if (!params) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
  char err[512] = {};
  int st = r->plugin->matmul_v2(r->cuda, site, a, b, addend, residual, c, params, err, sizeof err);
  return st ? fail(st, "%s (site %lld): %s", fn, static_cast<long long>(site), err) : KILN_OK;
}

KILN_RT_API int kiln_shim_cuda_conv_v1(kiln_shim_ctx *ctx, int64_t site, const void *x,
                                       const int64_t *x_dims, const void *w, const int64_t *w_dims,
                                       const void *bias, const void *residual, void *y,
                                       const int64_t *y_dims, const kiln_conv_params_v1 *params,
                                       int32_t elem_type, uint32_t flags) {
  const char *fn = "kiln_shim_cuda_conv_v1";
  Runner *r = cudaRunner(ctx, fn);
  if (!r) return KILN_ERR_DEVICE;
  if (!params || !x_dims || !w_dims || !y_dims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: params or dims NULL", fn);
  char err[512] = {};
  int st = r->plugin->conv(r->cuda, site, x, x_dims, w, w_dims, bias, residual, y, y_dims, params,
                           elem_type, flags, err, sizeof err);
  return st ? fail(st, "%s (site %lld): %s", fn, static_cast<long long>(site), err) : KILN_OK;
}

} // extern "C"
