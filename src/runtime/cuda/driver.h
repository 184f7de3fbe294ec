// The CUDA driver API, reached without linking libcuda: dlopen("libcuda.so.1") (or the
// library named by KILN_CUDA_DRIVER_MOCK, for tests without a GPU) and cuGetProcAddress.
#pragma once

#include <cuda.h>

#include <cstddef>

namespace kiln::rt::cuda {

// Every driver function the plugin calls. cuda.h maps some names to _v2 symbols; the
// member names follow that mapping and the string (#name) stays the base name, which is
// what cuGetProcAddress expects.
#define KILN_CU_FUNCTIONS(X)                                                                       \
  X(cuInit)                                                                                        \
  X(cuGetErrorString)                                                                              \
  X(cuDeviceGetCount)                                                                              \
  X(cuDeviceGet)                                                                                   \
  X(cuDevicePrimaryCtxRetain)                                                                      \
  X(cuCtxPushCurrent)                                                                              \
  X(cuCtxPopCurrent)                                                                               \
  X(cuModuleLoadData)                                                                              \
  X(cuModuleGetFunction)                                                                           \
  X(cuModuleUnload)                                                                                \
  X(cuMemAlloc)                                                                                    \
  X(cuMemFree)                                                                                     \
  X(cuMemcpyHtoDAsync)                                                                             \
  X(cuMemcpyDtoHAsync)                                                                             \
  X(cuMemcpyDtoDAsync)                                                                             \
  X(cuMemsetD8Async)                                                                               \
  X(cuStreamCreate)                                                                                \
  X(cuStreamDestroy)                                                                               \
  X(cuStreamSynchronize)                                                                           \
  X(cuStreamWaitEvent)                                                                             \
  X(cuEventCreate)                                                                                 \
  X(cuEventDestroy)                                                                                \
  X(cuEventRecord)                                                                                 \
  X(cuEventQuery)                                                                                  \
  X(cuEventSynchronize)                                                                            \
  X(cuEventElapsedTime)                                                                            \
  X(cuLaunchKernel)

struct Driver {
#define KILN_CU_FIELD(name) decltype(&::name) name = nullptr;
  KILN_CU_FUNCTIONS(KILN_CU_FIELD)
#undef KILN_CU_FIELD
};

// The driver, loaded and initialised (cuInit) on the first call; nullptr when that failed,
// with the reason in *why (valid for the process).
const Driver *driver(const char **why);

// "CUDA_ERROR_OUT_OF_MEMORY: out of memory"-style text for messages.
const char *errorText(CUresult r);

} // namespace kiln::rt::cuda
