// CudaLibraries: the cuBLASLt and cuDNN handles of one runner, and shared helpers. The
// matmul lives in cuda_matmul.cpp, the convolution in cuda_conv.cpp.
#include "cuda_libs_impl.h"

#include <kiln/model.h>

#include <cstdio>

namespace kiln::rt::cuda {

int fail(char *err, size_t errSize, int status, const char *fmt, ...) {
  if (err && errSize > 0) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(err, errSize, fmt, ap);
    va_end(ap);
  }
  return status;
}

uint32_t alignmentOf(const void *p, int64_t offset1, int64_t offset2) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | static_cast<uint64_t>(offset1) |
                  static_cast<uint64_t>(offset2) | 256u;
  return static_cast<uint32_t>(bits & (~bits + 1)); // lowest set bit
}

std::unique_ptr<CudaLibraries> CudaLibraries::create(char *err, size_t errSize) {
  auto libs = std::make_unique<CudaLibrariesImpl>();
  cublasStatus_t bs = cublasLtCreate(&libs->lt);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    libs->lt = nullptr;
    fail(err, errSize, KILN_ERR_DEVICE, "cublasLtCreate failed: %s (%s)", cublasLtGetStatusName(bs),
         cublasLtGetStatusString(bs));
    return nullptr;
  }
  cudnnStatus_t ds = cudnnCreate(&libs->dnn);
  if (ds != CUDNN_STATUS_SUCCESS) {
    libs->dnn = nullptr;
    char last[256] = "";
    cudnnGetLastErrorString(last, sizeof last);
    fail(err, errSize, KILN_ERR_DEVICE, "cudnnCreate failed: %s %s", cudnnGetErrorString(ds), last);
    return nullptr;
  }
  return libs;
}

CudaLibrariesImpl::~CudaLibrariesImpl() {
  mmPlans_.clear();
  convPlans_.clear();
  if (dnn) cudnnDestroy(dnn);
  if (lt) cublasLtDestroy(lt);
}

} // namespace kiln::rt::cuda
