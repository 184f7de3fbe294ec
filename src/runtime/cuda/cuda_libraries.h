// Per-runner cuBLASLt and cuDNN state for the level-4 shims (kiln_shim_cuda_matmul_v1,
// kiln_shim_cuda_conv_v1). Lives in the CUDA plugin (libkiln_rt_cuda.so); libkiln_rt's
// exported shim entry points forward here through the plugin table.
#pragma once

#include <kiln/shim.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln::rt::cuda {

/// Device memory one library call may use; stream-ordered (valid for work enqueued on the
/// call's stream until the run's work completes).
struct Workspace {
  void *ptr = nullptr; // CUdeviceptr
  size_t bytes = 0;
};

/// Handles and per-(site, shape) plans of one runner. One run at a time uses it (a runner
/// is never shared by concurrent runs), so it needs no locking.
class CudaLibraries {
public:
  /// Workspace bytes the runner reserves for library calls (part of its device arena).
  static constexpr size_t kWorkspaceBytes = size_t(64) << 20;

  /// Creates the handles; returns nullptr with a message in err on failure.
  static std::unique_ptr<CudaLibraries> create(char *err, size_t errSize);
  virtual ~CudaLibraries() = default;

  /// Enqueues the matmul on stream (a CUstream): kiln_shim_cuda_matmul_v2's semantics
  /// (residual optional; the v1 entry refuses the level-7 post-ops before it gets here).
  /// Returns 0 or a kiln_status with err filled.
  virtual int matmul(void *stream, Workspace ws, int64_t site, const void *a, const void *b,
                     const void *addend, const void *residual, void *c,
                     const kiln_cuda_matmul_params_v1 &p, char *err, size_t errSize) = 0;
  /// Enqueues the convolution on stream. Returns 0 or a kiln_status with err filled.
  virtual int conv(void *stream, Workspace ws, int64_t site, const void *x, const int64_t *xDims,
                   const void *w, const int64_t *wDims, const void *bias, const void *residual,
                   void *y, const int64_t *yDims, const kiln_conv_params_v1 &p, int32_t elemType,
                   uint32_t flags, char *err, size_t errSize) = 0;
};

} // namespace kiln::rt::cuda
