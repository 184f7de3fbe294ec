// kiln's own GEMM for weight MatMuls on AVX2 CPUs: C = post(alpha * A * B + beta * bias +
// residual), B constant and packed once into the GEMV's 16-column panels (gemv.h).
//
// Why not oneDNN there: oneDNN 2.6's AVX2 matmul runs transformer shapes (M 128-1024, K and
// N 768-3072) at 55-70% of the FMA peak (40% at 128 x 3072 x 768), where a 6 x 16 register
// tile over packed panels keeps the two FMA pipes ~90% busy with A and B in L1
// (docs/perf.md, session 15). With AVX-512 oneDNN's brgemm kernels are at 85-90% and stay.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// The activation applied last: a clamp to [lo, hi] (none, ReLU, Clip) or a GELU.
enum class GemmPost : int { Clamp, GeluErf, GeluTanh };

struct GemmParams {
  int64_t m, n, k;       // C is m x n, A m x k (row-major), B k x n (packed)
  int64_t lda, ldc, ldr; // row strides of A, C and the residual
  float alpha, beta;     // scale of A * B and of bias
  const float *bias;     // n floats or nullptr
  const float *residual; // m x n (row stride ldr) or nullptr; may be C itself
  GemmPost post;
  float lo, hi; // clamp bounds for GemmPost::Clamp
};

/// Rows of A per register tile; A is copied per call into strips of this many rows.
constexpr int64_t kGemmTileRows = 6;

/// Floats of the per-call scratch (A's packed strips) for m rows and k columns.
size_t gemmScratchFloats(int64_t m, int64_t k);

/// Whether this CPU runs gemmAvx2 (AVX2 and FMA).
bool gemmAvx2Supported();

/// C = post(alpha * A * packed B + beta * bias + residual) on the run's OpenMP threads.
/// packedB: packGemvWeights(B) (16-column panels); scratch: gemmScratchFloats(m, k) floats.
void gemmAvx2(const GemmParams &g, const float *a, const float *packedB, float *c, float *scratch);

} // namespace kiln::rt
