// Internals of CudaLibraries shared by cuda_libraries.cpp (handles, errors), cuda_matmul.cpp
// (cuBLASLt) and cuda_conv.cpp (cuDNN). Not part of any public interface.
#pragma once

#include "cuda_libraries.h"

#include <cublasLt.h>
#include <cudnn.h>

#include <array>
#include <cstdarg>
#include <memory>
#include <unordered_map>

namespace kiln::rt::cuda {

/// Fixed-capacity plan key: looking a plan up allocates nothing on the steady-state path.
struct PlanKey {
  std::array<int64_t, 48> w{};
  int n = 0;
  void push(int64_t v) { w[static_cast<size_t>(n++)] = v; }
  bool operator==(const PlanKey &o) const { return n == o.n && w == o.w; }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey &k) const {
    uint64_t h = 1469598103934665603ull; // FNV-1a over the words
    for (int i = 0; i < k.n; ++i) {
      h ^= static_cast<uint64_t>(k.w[static_cast<size_t>(i)]);
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

/// Writes the message into err (if any) and returns status.
int fail(char *err, size_t errSize, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/// Largest power of two (<= 256) dividing the address and every offset in `offsets` bytes.
uint32_t alignmentOf(const void *p, int64_t offset1 = 0, int64_t offset2 = 0);

/// One cuBLASLt matmul per (site, shape, params, alignments), created once. The cuBLAS
/// view is column-major: kiln's row-major C = A B is C^T = B^T A^T, so cuBLAS "A" is kiln's B.
struct MatmulPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t aL = nullptr, bL = nullptr, cL = nullptr; // C and D share cL
  cublasLtMatmulAlgo_t algo{};
  bool perMatrix = false; // strides one batched layout cannot take: loop over the batch
  bool bias = false;      // row-vector addend through the BIAS epilogue
  // Row addend with beta != 1: beta * bias is written into the workspace first.
  cublasLtMatrixTransformDesc_t scale = nullptr;
  cublasLtMatrixLayout_t biasL = nullptr;
  size_t biasBytes = 0; // workspace bytes in front of the matmul's own workspace
  ~MatmulPlan();
};

/// One cuDNN convolution per (site, shape, params), created once.
struct ConvPlan {
  cudnnTensorDescriptor_t xD = nullptr, yD = nullptr, biasD = nullptr;
  cudnnFilterDescriptor_t wD = nullptr;
  cudnnConvolutionDescriptor_t convD = nullptr;
  cudnnActivationDescriptor_t reluD = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  size_t algoBytes = 0;
  bool fused = false; // cudnnConvolutionBiasActivationForward (bias + ReLU present)
  // Asymmetric pads: x is copied into a zero-padded buffer at the front of the workspace.
  cudnnTensorDescriptor_t padInteriorD = nullptr; // x's shape with the padded buffer's strides
  cudnnTensorDescriptor_t padD = nullptr;         // the whole padded buffer
  int64_t padOffsetElems = 0;                     // first interior element
  size_t padBytes = 0;                            // (256-aligned) bytes of the padded buffer
  size_t elemSize = 4;
  ~ConvPlan();
};

class CudaLibrariesImpl final : public CudaLibraries {
public:
  CudaLibrariesImpl() = default;
  ~CudaLibrariesImpl() override;

  int matmul(void *stream, Workspace ws, int64_t site, const void *a, const void *b,
             const void *addend, const void *residual, void *c, const kiln_cuda_matmul_params_v1 &p,
             char *err, size_t errSize) override;
  int conv(void *stream, Workspace ws, int64_t site, const void *x, const int64_t *xDims,
           const void *w, const int64_t *wDims, const void *bias, const void *residual, void *y,
           const int64_t *yDims, const kiln_conv_params_v1 &p, int32_t elemType, uint32_t flags,
           char *err, size_t errSize) override;

  cublasLtHandle_t lt = nullptr;
  cudnnHandle_t dnn = nullptr;

private:
  int buildMatmulPlan(MatmulPlan &plan, const kiln_cuda_matmul_params_v1 &p, int addendMode,
                      size_t wsAvail, const uint32_t align[4], bool perMatrix, char *err,
                      size_t errSize, int64_t site);
  int buildConvPlan(ConvPlan &plan, const int64_t *xDims, const int64_t *wDims,
                    const int64_t *yDims, const kiln_conv_params_v1 &p, int32_t elemType,
                    uint32_t flags, bool hasBias, bool hasResidual, size_t wsBytes, char *err,
                    size_t errSize, int64_t site);

  std::unordered_map<PlanKey, std::unique_ptr<MatmulPlan>, PlanKeyHash> mmPlans_;
  std::unordered_map<PlanKey, std::unique_ptr<ConvPlan>, PlanKeyHash> convPlans_;
  void *dnnStream_ = nullptr; // the stream last bound to the cuDNN handle
};

} // namespace kiln::rt::cuda
