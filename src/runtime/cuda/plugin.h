// Internals shared by the plugin's files: a device (a GPU's primary context), the guard that
// makes it current, and error reporting into the caller's buffer.
#pragma once

#include "driver.h"

#include <kiln/model.h>

#include <cstddef>

namespace kiln::rt::cuda {

// One GPU. Its primary context is retained once and kept for the process, so device
// pointers handed to callers (kiln_alloc_tensor) stay freeable after containers are gone.
struct Device {
  const Driver *drv = nullptr;
  int ordinal = 0;
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
};

// Makes the device's context current for one scope and restores the caller's.
class ContextGuard {
public:
  explicit ContextGuard(const Device &d) : d_(d) { ok_ = d.drv->cuCtxPushCurrent(d.ctx); }
  ~ContextGuard() {
    if (ok_ == CUDA_SUCCESS) {
      CUcontext popped;
      d_.drv->cuCtxPopCurrent(&popped);
    }
  }
  CUresult status() const { return ok_; }
  ContextGuard(const ContextGuard &) = delete;
  ContextGuard &operator=(const ContextGuard &) = delete;

private:
  const Device &d_;
  CUresult ok_;
};

// Writes a printf-style message to err and returns status.
int report(char *err, size_t errSize, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Reports a failed driver call as KILN_ERR_DEVICE (KILN_ERR_OUT_OF_MEMORY for allocations).
int reportCu(char *err, size_t errSize, CUresult r, const char *what);

} // namespace kiln::rt::cuda
