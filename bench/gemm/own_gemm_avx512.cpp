// The bench GEMM's AVX-512 tile (compiled with -mavx512f -mavx2 -mfma; own_gemm.h describes
// the layouts, own_gemm_driver.h the blocking): 8 x 48 of C in 24 zmm registers, with the
// epilogue applied while the tile is still in registers.
#include "own_gemm_driver.h"

#include "exp_avx512.h"

#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace kiln::bench::gemm {
namespace {

constexpr int NV = static_cast<int>(kPanelCols / 16); // zmm per tile row

using kiln::rt::expNonPositive512;

/// 0.5 x (1 + erf(x / sqrt 2)). With z = |x| / sqrt 2, 1 - erf(z) = q = t P(t) e^(-z^2),
/// t = 1 / (1 + 0.3275911 z) (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); for x < 0 the
/// factor is q itself, so large negative inputs lose no precision to cancellation.
__m512 geluErf(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678f));
  const __m512 t = _mm512_div_ps(
      _mm512_set1_ps(1.f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 q =
      _mm512_mul_ps(_mm512_mul_ps(p, t),
                    expNonPositive512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))));
  const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 factor = _mm512_mask_sub_ps(q, positive, _mm512_set1_ps(2.f), q);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): with e = e^(-2|u|), 1 + tanh(u) is
/// 2 / (1 + e) for u >= 0 and 2e / (1 + e) below.
__m512 geluTanh(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u =
      _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x), _mm512_set1_ps(0.79788456f));
  const __m512 e = expNonPositive512(_mm512_mul_ps(_mm512_abs_ps(u), _mm512_set1_ps(-2.f)));
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 factor = _mm512_mask_mul_ps(inv, negative, inv, e);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

__m512 finish(__m512 v, const Epilogue &ep, const float *bias, const float *res, __mmask16 m) {
  if (ep.alpha != 1.f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.alpha));
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
  switch (ep.post) {
  case Post::None:
    return v;
  case Post::Relu:
    return _mm512_max_ps(v, _mm512_setzero_ps());
  case Post::Clip:
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(ep.clipMin)), _mm512_set1_ps(ep.clipMax));
  case Post::GeluErf:
    return geluErf(v);
  case Post::GeluTanh:
    return geluTanh(v);
  }
  return v;
}

/// One MR x 48 tile of C over one K block, accumulators in registers.
void tile(const TileArgs &t, const Epilogue &ep) {
  __mmask16 cols[NV];
  for (int j = 0; j < NV; ++j) {
    const int v = std::clamp(t.validCols - 16 * j, 0, 16);
    cols[j] = static_cast<__mmask16>((1u << v) - 1u);
  }
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j)
      acc[i][j] = _mm512_setzero_ps();
  const float *ap = t.ap, *bp = t.bp;
  for (int64_t kk = 0; kk < t.kc; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16),
                 b2 = _mm512_loadu_ps(bp + 32);
    if (kk < t.nextLines)
      _mm_prefetch(reinterpret_cast<const char *>(t.nextB + 16 * kk), _MM_HINT_T1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
    }
    ap += MR;
    bp += kPanelCols;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= t.rows) break;
    float *out = t.c + i * t.ldc;
    const float *res =
        t.last && ep.residual ? ep.residual + (t.row0 + i) * ep.ldr + t.col0 : nullptr;
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[i][j];
      if (t.loadC) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cols[j], out + 16 * j));
      if (t.last)
        v = finish(v, ep, ep.bias ? ep.bias + t.col0 + 16 * j : nullptr,
                   res ? res + 16 * j : nullptr, cols[j]);
      _mm512_mask_storeu_ps(out + 16 * j, cols[j], v);
    }
  }
}

} // namespace

void runAvx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
               float *c, int64_t ldc, const Epilogue &ep) {
  drive<tile>(m, n, k, a, lda, bPacked, c, ldc, ep);
}

} // namespace kiln::bench::gemm
