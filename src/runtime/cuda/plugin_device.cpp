// Plugin entries for devices, modules and memory, and the driver table generated code uses.
#include "kernel_timing.h"
#include "plugin_entries.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace kiln::rt::cuda {

int report(char *err, size_t errSize, int status, const char *fmt, ...) {
  if (err && errSize) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(err, errSize, fmt, ap);
    va_end(ap);
  }
  return status;
}

int reportCu(char *err, size_t errSize, CUresult r, const char *what) {
  int st = r == CUDA_ERROR_OUT_OF_MEMORY ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_DEVICE;
  return report(err, errSize, st, "%s failed (CUDA error %d: %s)", what, static_cast<int>(r),
                errorText(r));
}

namespace {

// Devices opened so far, by ordinal; never closed (see Device).
std::mutex devicesMu;
std::vector<std::unique_ptr<Device>> devices;

struct Module {
  CUmodule mod = nullptr;
  std::vector<void *> functions;
};

// ---- the kiln_cuda_driver_v1 the wrapper launches through ----
const Driver &d() {
  return *driver(nullptr);
}
int drvLaunch(void *f, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx, uint32_t by, uint32_t bz,
              uint32_t shared, void *stream, void **args) {
  if (kernelTimingOn())
    return timedLaunch(d(), static_cast<CUfunction>(f), gx, gy, gz, bx, by, bz, shared,
                       static_cast<CUstream>(stream), args);
  return d().cuLaunchKernel(static_cast<CUfunction>(f), gx, gy, gz, bx, by, bz, shared,
                            static_cast<CUstream>(stream), args, nullptr);
}
int drvCopy(void *dst, const void *src, size_t bytes, void *stream) {
  if (!bytes) return CUDA_SUCCESS;
  return d().cuMemcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(dst),
                               reinterpret_cast<CUdeviceptr>(src), bytes,
                               static_cast<CUstream>(stream));
}
int drvReadToHost(void *dst, const void *src, size_t bytes, void *stream) {
  if (!bytes) return CUDA_SUCCESS;
  CUresult r = d().cuMemcpyDtoHAsync(dst, reinterpret_cast<CUdeviceptr>(src), bytes,
                                     static_cast<CUstream>(stream));
  return r != CUDA_SUCCESS ? r : d().cuStreamSynchronize(static_cast<CUstream>(stream));
}
int drvFill(void *dst, uint8_t value, size_t bytes, void *stream) {
  if (!bytes) return CUDA_SUCCESS;
  return d().cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(dst), value, bytes,
                             static_cast<CUstream>(stream));
}
const char *drvErrorString(int status) {
  return errorText(static_cast<CUresult>(status));
}
const kiln_cuda_driver_v1 kDriverTable = {
    sizeof(kiln_cuda_driver_v1), drvLaunch, drvCopy, drvReadToHost, drvFill, drvErrorString};

} // namespace

const kiln_cuda_driver_v1 *driverTable() {
  return &kDriverTable;
}

int openDevice(int32_t ordinal, void **out, char *err, size_t errSize) {
  const char *why = nullptr;
  const Driver *drv = driver(&why);
  if (!drv) return report(err, errSize, KILN_ERR_DEVICE, "device 'cuda:%d': %s", ordinal, why);
  std::lock_guard<std::mutex> lock(devicesMu);
  if (ordinal >= 0 && static_cast<size_t>(ordinal) < devices.size() && devices[ordinal]) {
    *out = devices[ordinal].get();
    return KILN_OK;
  }
  int count = 0;
  if (CUresult r = drv->cuDeviceGetCount(&count))
    return reportCu(err, errSize, r, "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    return report(err, errSize, KILN_ERR_DEVICE,
                  "device 'cuda:%d' does not exist: this machine has %d CUDA device(s) (use "
                  "cuda:0..cuda:%d)",
                  ordinal, count, count - 1);
  auto dev = std::make_unique<Device>();
  dev->drv = drv;
  dev->ordinal = ordinal;
  if (CUresult r = drv->cuDeviceGet(&dev->dev, ordinal))
    return reportCu(err, errSize, r, "cuDeviceGet");
  if (CUresult r = drv->cuDevicePrimaryCtxRetain(&dev->ctx, dev->dev))
    return reportCu(err, errSize, r, "cuDevicePrimaryCtxRetain");
  if (devices.size() <= static_cast<size_t>(ordinal)) devices.resize(ordinal + 1);
  devices[ordinal] = std::move(dev);
  *out = devices[ordinal].get();
  return KILN_OK;
}

int loadModule(void *device, const void *image, size_t imageSize, int32_t numNames,
               const char *const *names, void **module, void *const **functions, char *err,
               size_t errSize) {
  auto &dev = *static_cast<Device *>(device);
  ContextGuard guard(dev);
  if (guard.status()) return reportCu(err, errSize, guard.status(), "cuCtxPushCurrent");
  auto m = std::unique_ptr<Module>(new (std::nothrow) Module());
  if (!m) return report(err, errSize, KILN_ERR_OUT_OF_MEMORY, "out of memory");
  if (numNames > 0 && (!image || !imageSize))
    return report(err, errSize, KILN_ERR_INTERNAL,
                  "the model launches %d CUDA kernel(s) but has no fatbin", numNames);
  if (image && imageSize) {
    if (CUresult r = dev.drv->cuModuleLoadData(&m->mod, image))
      return report(err, errSize, KILN_ERR_DEVICE,
                    "cannot load the model's kernels on cuda:%d (cuModuleLoadData: CUDA error "
                    "%d: %s); the fatbin may lack code for this GPU's architecture",
                    dev.ordinal, static_cast<int>(r), errorText(r));
  }
  m->functions.assign(numNames > 0 ? numNames : 1, nullptr);
  for (int32_t i = 0; i < numNames; ++i) {
    CUfunction f = nullptr;
    if (CUresult r = dev.drv->cuModuleGetFunction(&f, m->mod, names[i])) {
      dev.drv->cuModuleUnload(m->mod);
      return report(err, errSize, KILN_ERR_INTERNAL,
                    "kernel '%s' is not in the model's fatbin (cuModuleGetFunction: %s)", names[i],
                    errorText(r));
    }
    m->functions[i] = f;
    if (kernelTimingOn()) timingRegister(f, names[i]);
  }
  *functions = m->functions.data();
  *module = m.release();
  return KILN_OK;
}

void unloadModule(void *device, void *module) {
  auto *m = static_cast<Module *>(module);
  if (!m) return;
  timingFlush();
  auto &dev = *static_cast<Device *>(device);
  if (m->mod) {
    ContextGuard guard(dev);
    dev.drv->cuModuleUnload(m->mod);
  }
  delete m;
}

int memAlloc(void *device, size_t bytes, void **ptr, char *err, size_t errSize) {
  auto &dev = *static_cast<Device *>(device);
  ContextGuard guard(dev);
  CUdeviceptr p = 0;
  // Zero bytes still yields a unique valid pointer, like the host arena.
  if (CUresult r = dev.drv->cuMemAlloc(&p, bytes ? bytes : 1)) {
    report(err, errSize, r == CUDA_ERROR_OUT_OF_MEMORY ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_DEVICE,
           "cannot allocate %zu bytes on cuda:%d (CUDA error %d: %s)", bytes, dev.ordinal,
           static_cast<int>(r), errorText(r));
    return r == CUDA_ERROR_OUT_OF_MEMORY ? KILN_ERR_OUT_OF_MEMORY : KILN_ERR_DEVICE;
  }
  *ptr = reinterpret_cast<void *>(p);
  return KILN_OK;
}

void memFree(void *device, void *ptr) {
  if (!ptr) return;
  auto &dev = *static_cast<Device *>(device);
  ContextGuard guard(dev);
  dev.drv->cuMemFree(reinterpret_cast<CUdeviceptr>(ptr));
}

int copySync(void *device, void *dst, int32_t dstOnDevice, const void *src, int32_t srcOnDevice,
             size_t bytes, char *err, size_t errSize) {
  if (!bytes) return KILN_OK;
  if (!dstOnDevice && !srcOnDevice) {
    std::memcpy(dst, src, bytes);
    return KILN_OK;
  }
  auto &dev = *static_cast<Device *>(device);
  ContextGuard guard(dev);
  if (guard.status()) return reportCu(err, errSize, guard.status(), "cuCtxPushCurrent");
  // The legacy default stream (0) orders this after work on blocking streams, which is what
  // runner streams are: a copy of a run's output waits for that run.
  auto dptr = [](const void *p) { return reinterpret_cast<CUdeviceptr>(p); };
  CUresult r;
  if (dstOnDevice && srcOnDevice)
    r = dev.drv->cuMemcpyDtoDAsync(dptr(dst), dptr(src), bytes, nullptr);
  else if (dstOnDevice)
    r = dev.drv->cuMemcpyHtoDAsync(dptr(dst), src, bytes, nullptr);
  else
    r = dev.drv->cuMemcpyDtoHAsync(dst, dptr(src), bytes, nullptr);
  if (r == CUDA_SUCCESS) r = dev.drv->cuStreamSynchronize(nullptr);
  return r == CUDA_SUCCESS ? KILN_OK : reportCu(err, errSize, r, "copy");
}

} // namespace kiln::rt::cuda
