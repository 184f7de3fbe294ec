// Placeholder until cuda_libraries.cpp (cuBLASLt/cuDNN) lands; deleted at that merge.
#include "cuda_libraries.h"

#include <kiln/model.h>

#include <cstdio>

namespace kiln::rt::cuda {

std::unique_ptr<CudaLibraries> CudaLibraries::create(char *err, size_t errSize) {
  std::snprintf(err, errSize,
                "the CUDA library shims (cuBLASLt/cuDNN) are not built into this "
                "libkiln_rt_cuda.so");
  return nullptr;
}

} // namespace kiln::rt::cuda
