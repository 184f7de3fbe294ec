// The last 24 columns of an AVX2 GEMM whose N is 8 past a whole panel (MobileNetV2's 24-channel
// projections; N = 40, 56, ...), on a 4 x 24 register tile: 12 accumulators, three vectors of B
// (the next-to-last panel and the valid half of the last) and four broadcasts of A a k-step.
//
// Why: on the 6 x 16 tile the last panel computes 16 columns for 8, so at N = 24 a third of
// the FMAs went to padding and those GEMMs stayed with oneDNN 2.6 (224 x 24 x 96 and 224 x 24
// x 144 at 42-49 GFLOP/s on Zen 3, B in cache). The 4 x 24 tile runs them at 90-93 (in L1),
// the 6 x 16 one over both panels at 57-64 (docs/perf.md, session 36). Compiled with -mavx2
// -mfma, like gemm_avx2.cpp, whose driver calls it.
#include "gemm.h"

#include "gelu_avx2.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr int64_t NR = kGemvPanel;
constexpr int kTailCols = 24, kVecs = 3;

/// R rows x 24 columns: C = post(alpha * A B + beta * bias + residual), every column valid.
template <int R>
void tile24(const GemmParams &g, const float *a, const float *p0, const float *p1, float *c,
            const float *residual, const float *bias) {
  __m256 acc[R][kVecs];
  const float *row[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    row[i] = a + i * g.lda;
    acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < g.k; ++k) {
    const __m256 b0 = _mm256_loadu_ps(p0 + k * NR), b1 = _mm256_loadu_ps(p0 + k * NR + 8);
    const __m256 b2 = _mm256_loadu_ps(p1 + k * NR);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 av = _mm256_broadcast_ss(row[i] + k);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(av, b2, acc[i][2]);
    }
  }
  const __m256 alpha = _mm256_set1_ps(g.alpha), beta = _mm256_set1_ps(g.beta);
  const __m256 lo = _mm256_set1_ps(g.lo), hi = _mm256_set1_ps(g.hi);
  const bool clamp = g.post == GemmPost::Clamp && clampBounds(g);
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < kVecs; ++v) {
      __m256 x = g.alpha != 1.f ? _mm256_mul_ps(acc[i][v], alpha) : acc[i][v];
      if (bias) x = _mm256_fmadd_ps(beta, _mm256_loadu_ps(bias + 8 * v), x);
      // An in-place residual is C itself: read here, before this tile stores over it.
      if (residual) x = _mm256_add_ps(x, _mm256_loadu_ps(residual + i * g.ldr + 8 * v));
      if (clamp) x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); // NaN passes (second operand)
      if (g.post == GemmPost::GeluErf) x = geluErf256(x);
      if (g.post == GemmPost::GeluTanh) x = geluTanh256(x);
      _mm256_storeu_ps(c + i * g.ldc + 8 * v, x);
    }
}

} // namespace

void gemmAvx2Tail24(const GemmParams &g, const float *a, const float *packedB, float *c,
                    int64_t row0, int64_t row1) {
  const int64_t col0 = g.n - kTailCols;
  const float *p0 = packedB + col0 / NR * g.k * NR, *p1 = p0 + g.k * NR;
  const float *bias = g.bias ? g.bias + col0 : nullptr;
  for (int64_t r = row0; r < row1; r += kGemmTailRows) {
    const float *ar = a + r * g.lda, *res = g.residual ? g.residual + r * g.ldr + col0 : nullptr;
    float *cr = c + r * g.ldc + col0;
    switch (std::min<int64_t>(kGemmTailRows, row1 - r)) {
    case 1:
      tile24<1>(g, ar, p0, p1, cr, res, bias);
      break;
    case 2:
      tile24<2>(g, ar, p0, p1, cr, res, bias);
      break;
    case 3:
      tile24<3>(g, ar, p0, p1, cr, res, bias);
      break;
    default:
      tile24<kGemmTailRows>(g, ar, p0, p1, cr, res, bias);
    }
  }
}

} // namespace kiln::rt
