// Plugin runners (stream, done event, device arena, libraries) and the exported table.
//
// A runner's arena is one device allocation, reused run after run. Runs on the runner's
// stream are ordered by the stream; a run on another stream first waits for the done event
// of the previous run, so arena memory is never reused while a kernel may still touch it.
// The arena grows only after cuEventSynchronize on that event.
#include "cuda_libraries.h"
#include "plugin_entries.h"

#include <memory>
#include <new>

namespace kiln::rt::cuda {

namespace {

constexpr size_t kArenaAlign = 256;
constexpr size_t kArenaGranule = size_t(1) << 20; // grow in whole MiB

size_t roundUp(size_t n, size_t a) {
  return (n + a - 1) / a * a;
}

struct Runner {
  Device *dev = nullptr;
  CUstream own = nullptr;
  CUevent done = nullptr;
  bool recorded = false;   // done holds a recorded run
  CUstream last = nullptr; // stream of that run
  CUstream current = nullptr;
  bool inRun = false; // between run_begin and run_end (context pushed)
  CUdeviceptr arena = 0;
  size_t capacity = 0;
  size_t workspace = 0; // bytes at the arena's start reserved for library calls
  size_t used = 0;      // bump offset after the workspace
  size_t limit = 0;     // workspace + scratch reserved for this run
  std::unique_ptr<CudaLibraries> libs;
};

Runner *asRunner(void *r) {
  return static_cast<Runner *>(r);
}

int runnerCreate(void *device, void **out, char *err, size_t errSize) {
  auto &dev = *static_cast<Device *>(device);
  ContextGuard guard(dev);
  if (guard.status()) return reportCu(err, errSize, guard.status(), "cuCtxPushCurrent");
  auto r = std::unique_ptr<Runner>(new (std::nothrow) Runner());
  if (!r) return report(err, errSize, KILN_ERR_OUT_OF_MEMORY, "out of memory");
  r->dev = &dev;
  // A blocking stream: it orders after the legacy default stream, where constant updates
  // and kiln_copy_tensor copy.
  if (CUresult e = dev.drv->cuStreamCreate(&r->own, CU_STREAM_DEFAULT))
    return reportCu(err, errSize, e, "cuStreamCreate");
  if (CUresult e = dev.drv->cuEventCreate(&r->done, CU_EVENT_DISABLE_TIMING)) {
    dev.drv->cuStreamDestroy(r->own);
    return reportCu(err, errSize, e, "cuEventCreate");
  }
  *out = r.release();
  return KILN_OK;
}

void runnerDestroy(void *runner) {
  Runner *r = asRunner(runner);
  if (!r) return;
  const Driver &drv = *r->dev->drv;
  {
    ContextGuard guard(*r->dev);
    if (r->recorded) drv.cuEventSynchronize(r->done);
    r->libs.reset();
    if (r->arena) drv.cuMemFree(r->arena);
    drv.cuEventDestroy(r->done);
    drv.cuStreamDestroy(r->own);
  }
  delete r;
}

int runBegin(void *runner, void *stream, uint32_t flags, size_t scratchBytes, void **streamOut,
             char *err, size_t errSize) {
  Runner *r = asRunner(runner);
  const Driver &drv = *r->dev->drv;
  if (CUresult e = drv.cuCtxPushCurrent(r->dev->ctx))
    return reportCu(err, errSize, e, "cuCtxPushCurrent");
  auto failPop = [&](int st) {
    CUcontext popped;
    drv.cuCtxPopCurrent(&popped);
    return st;
  };
  CUstream s = (flags & KILN_PLUGIN_OWN_STREAM) ? r->own : static_cast<CUstream>(stream);
  if (r->recorded && s != r->last)
    if (CUresult e = drv.cuStreamWaitEvent(s, r->done, 0))
      return failPop(reportCu(err, errSize, e, "cuStreamWaitEvent on the caller's stream"));
  size_t workspace = (flags & KILN_PLUGIN_LIBRARIES) ? CudaLibraries::kWorkspaceBytes : 0;
  size_t need = workspace + roundUp(scratchBytes, kArenaAlign);
  if (need > r->capacity) {
    // The previous run may still read the old arena: wait for it before freeing.
    if (r->recorded)
      if (CUresult e = drv.cuEventSynchronize(r->done))
        return failPop(reportCu(err, errSize, e, "cuEventSynchronize"));
    if (r->arena) drv.cuMemFree(r->arena);
    r->arena = 0;
    r->capacity = 0;
    size_t bytes = roundUp(need, kArenaGranule);
    if (CUresult e = drv.cuMemAlloc(&r->arena, bytes))
      return failPop(report(
          err, errSize, e == CUDA_ERROR_OUT_OF_MEMORY ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_DEVICE,
          "cannot reserve %zu bytes of run scratch on cuda:%d (CUDA error %d: "
          "%s)",
          bytes, r->dev->ordinal, static_cast<int>(e), errorText(e)));
    r->capacity = bytes;
  }
  r->workspace = workspace;
  r->used = workspace;
  r->limit = need;
  r->current = s;
  r->inRun = true;
  *streamOut = s;
  return KILN_OK;
}

void *runAlloc(void *runner, size_t bytes) {
  Runner *r = asRunner(runner);
  size_t at = roundUp(r->used, kArenaAlign);
  // Never allocate mid-run: scratch_bytes promised the total, so overrunning it is a bug.
  if (!r->inRun || at + bytes > r->limit) return nullptr;
  r->used = at + (bytes ? bytes : 1);
  return reinterpret_cast<void *>(r->arena + at);
}

int runEnd(void *runner, char *err, size_t errSize) {
  Runner *r = asRunner(runner);
  const Driver &drv = *r->dev->drv;
  CUresult e = drv.cuEventRecord(r->done, r->current);
  if (e == CUDA_SUCCESS) {
    r->recorded = true;
    r->last = r->current;
  }
  r->inRun = false;
  CUcontext popped;
  drv.cuCtxPopCurrent(&popped);
  return e == CUDA_SUCCESS ? KILN_OK : reportCu(err, errSize, e, "cuEventRecord");
}

int runnerQuery(void *runner) {
  Runner *r = asRunner(runner);
  if (!r->recorded) return 1;
  ContextGuard guard(*r->dev);
  CUresult e = r->dev->drv->cuEventQuery(r->done);
  if (e == CUDA_SUCCESS) return 1;
  return e == CUDA_ERROR_NOT_READY ? 0 : -1;
}

int runnerWait(void *runner, char *err, size_t errSize) {
  Runner *r = asRunner(runner);
  if (!r->recorded) return KILN_OK;
  ContextGuard guard(*r->dev);
  if (CUresult e = r->dev->drv->cuEventSynchronize(r->done))
    return reportCu(err, errSize, e, "cuEventSynchronize");
  return KILN_OK;
}

// The libraries of a runner, created on first use; nullptr with err filled on failure.
CudaLibraries *libraries(Runner *r, const char *shim, char *err, size_t errSize) {
  if (!r->inRun) {
    report(err, errSize, KILN_ERR_INVALID_STATE, "%s: called outside a run", shim);
    return nullptr;
  }
  if (!r->libs) r->libs = CudaLibraries::create(err, errSize);
  return r->libs.get();
}

int matmulV2(void *runner, int64_t site, const void *a, const void *b, const void *addend,
             const void *residual, void *c, const kiln_cuda_matmul_params_v1 *p, char *err,
             size_t errSize) {
  Runner *r = asRunner(runner);
  CudaLibraries *libs = libraries(r, "kiln_shim_cuda_matmul_v2", err, errSize);
  if (!libs) return r->inRun ? KILN_ERR_UNSUPPORTED : KILN_ERR_INVALID_STATE;
  Workspace ws{reinterpret_cast<void *>(r->arena), r->workspace};
  return libs->matmul(r->current, ws, site, a, b, addend, residual, c, *p, err, errSize);
}

/// kiln_shim_cuda_matmul_v1 predates the level-7 post-ops: it refuses them as unknown.
int matmul(void *runner, int64_t site, const void *a, const void *b, const void *addend, void *c,
           const kiln_cuda_matmul_params_v1 *p, char *err, size_t errSize) {
  if (p->mm.post_op > KILN_POST_CLIP)
    return report(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                  "cuda matmul site %lld: unknown post_op %d (the GELUs need "
                  "kiln_shim_cuda_matmul_v2)",
                  static_cast<long long>(site), p->mm.post_op);
  return matmulV2(runner, site, a, b, addend, nullptr, c, p, err, errSize);
}

int conv(void *runner, int64_t site, const void *x, const int64_t *xDims, const void *w,
         const int64_t *wDims, const void *bias, const void *residual, void *y,
         const int64_t *yDims, const kiln_conv_params_v1 *p, int32_t elemType, uint32_t flags,
         char *err, size_t errSize) {
  Runner *r = asRunner(runner);
  CudaLibraries *libs = libraries(r, "kiln_shim_cuda_conv_v1", err, errSize);
  if (!libs) return r->inRun ? KILN_ERR_UNSUPPORTED : KILN_ERR_INVALID_STATE;
  Workspace ws{reinterpret_cast<void *>(r->arena), r->workspace};
  return libs->conv(r->current, ws, site, x, xDims, w, wDims, bias, residual, y, yDims, *p,
                    elemType, flags, err, errSize);
}

const kiln_device_plugin_v1 kPlugin = {
    sizeof(kiln_device_plugin_v1),
    openDevice,
    loadModule,
    unloadModule,
    memAlloc,
    memFree,
    copySync,
    runnerCreate,
    runnerDestroy,
    runBegin,
    runAlloc,
    runEnd,
    runnerQuery,
    runnerWait,
    driverTable,
    matmul,
    conv,
    matmulV2,
};

} // namespace

} // namespace kiln::rt::cuda

extern "C" __attribute__((visibility("default"))) const kiln_device_plugin_v1 *
kiln_device_plugin_cuda_v1(void) {
  return &kiln::rt::cuda::kPlugin;
}
