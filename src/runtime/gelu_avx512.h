// GELU on 16 floats for the AVX-512 GEMM epilogues (the runtime's GEMM, the bench's own GEMM).
// Include only from files compiled with -mavx512f; always_inline, as exp_avx512.h.
#pragma once

#include "exp_avx512.h"

#include <immintrin.h>

namespace kiln::rt {

/// 0.5 x (1 + erf(x / sqrt 2)). With z = |x| / sqrt 2, 1 - erf(z) = q = t P(t) e^(-z^2),
/// t = 1 / (1 + 0.3275911 z) (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); for x < 0 the
/// factor is q itself, so large negative inputs lose no precision to cancellation.
[[gnu::always_inline]] inline __m512 geluErf512(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678f));
  const __m512 t = _mm512_div_ps(
      _mm512_set1_ps(1.f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  // q is 0 past z^2 = 80 (it is < 1e-35 there): t P(t) times e^(-z^2) near the float minimum
  // would be denormal, which Intel cores compute ~3.5x slower (|x| in 12.6-13.2).
  const __m512 negZ2 = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z));
  const __mmask16 live = _mm512_cmp_ps_mask(negZ2, _mm512_set1_ps(-80.f), _CMP_GE_OQ);
  const __m512 q = _mm512_maskz_mul_ps(live, _mm512_mul_ps(p, t), expNonPositive512(negZ2));
  const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 factor = _mm512_mask_sub_ps(q, positive, _mm512_set1_ps(2.f), q);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): with e = e^(-2|u|), 1 + tanh(u) is
/// 2 / (1 + e) for u >= 0 and 2e / (1 + e) below.
[[gnu::always_inline]] inline __m512 geluTanh512(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u =
      _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x), _mm512_set1_ps(0.79788456f));
  const __m512 e = expNonPositive512(_mm512_mul_ps(_mm512_abs_ps(u), _mm512_set1_ps(-2.f)));
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 factor = _mm512_mask_mul_ps(inv, negative, inv, e);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

} // namespace kiln::rt
