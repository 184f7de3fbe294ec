// Per-kernel GPU times for `kiln compile --autotune` (and anyone who sets the variable):
// with KILN_CUDA_KERNEL_TIMES=<file.json> in the environment, every generated kernel launch
// is bracketed by two events and waited for, and when a model's module is unloaded (its
// container destroyed) the time per kernel name is written to that file. Off (the default),
// launches go straight to cuLaunchKernel: nothing is recorded and nothing synchronises.
#pragma once

#include "driver.h"

namespace kiln::rt::cuda {

/// Whether KILN_CUDA_KERNEL_TIMES was set when the plugin loaded.
bool kernelTimingOn();
/// Names a loaded kernel for the report.
void timingRegister(CUfunction f, const char *name);
/// cuLaunchKernel, timed with events on the stream (synchronises: timing mode only).
CUresult timedLaunch(const Driver &d, CUfunction f, uint32_t gx, uint32_t gy, uint32_t gz,
                     uint32_t bx, uint32_t by, uint32_t bz, uint32_t shared, CUstream stream,
                     void **args);
/// Writes {"kernels": {name: {"calls": n, "ms": total}}} to the file and starts over.
void timingFlush();

} // namespace kiln::rt::cuda
