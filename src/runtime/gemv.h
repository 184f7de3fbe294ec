// kiln's own kernel for weight GEMMs of one to four rows (a classifier on one image, BERT's
// pooler): C = clamp(alpha * A * B + beta * bias + residual).
//
// Why not oneDNN: oneDNN 2.6's matmul at M = 1 reads its packed B at ~11 GB/s (MobileNetV2's
// 1280 -> 1000 classifier: 0.40-0.45 ms on Zen 4), a fraction of what streaming the same bytes
// gives. Here B is packed once into panels of 16 columns, [panel][k][16], so each panel is one
// contiguous stream, and each thread takes a share of the panels.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// Columns per packed panel.
constexpr int64_t kGemvPanel = 16;

struct GemvParams {
  int64_t m, n, k;       // C is m x n; m <= kGemvMaxRows
  int64_t lda, ldc, ldr; // row strides of A, C and the residual
  float alpha, beta;     // scale of A * B and of bias
  const float *bias;     // n floats or nullptr
  const float *residual; // m x n (row stride ldr) or nullptr
  float lo, hi;          // clamp bounds (ReLU: [0, inf); none: (-inf, inf))
};
constexpr int64_t kGemvMaxRows = 4;

/// Floats of B packed for n columns and k rows.
size_t gemvPackedFloats(int64_t n, int64_t k);

/// B (k x n; trans_b: stored n x k) with row stride ldb into panels; columns past n are zero.
void packGemvWeights(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB, float *packed);

/// C = clamp(alpha * A * B + beta * bias + residual) on the run's OpenMP threads.
void gemv(const GemvParams &g, const float *a, const float *packed, float *c);

/// Kernels of one ISA level (gemv_kernel.h); picked at run time from CPUID and the cap.
struct GemvKernel {
  const char *name;
  /// Panels [p0, p1) of all m rows.
  void (*panels)(const GemvParams &g, const float *a, const float *packed, float *c, int64_t p0,
                 int64_t p1);
};
const GemvKernel &gemvAvx512Kernel();
const GemvKernel &gemvAvx2Kernel();
const GemvKernel &gemvGenericKernel();

/// gemv with `kernel` instead of the active one, its panels shared among the threads the same
/// way (bench/gemm/gemv_streams.cpp times kernel variants through it).
void gemvWith(const GemvKernel &kernel, const GemvParams &g, const float *a, const float *packed,
              float *c);

/// The kernel gemv uses (the widest this CPU runs under the cap), or `forced` when non-null
/// (tests compare them).
const GemvKernel &activeGemvKernel();
void forceGemvKernel(const GemvKernel *forced);

} // namespace kiln::rt
