// GELU on 8 floats for the AVX2 GEMM epilogues (the runtime's GEMM, the bench's own GEMM).
// Include only from files compiled with -mavx2 -mfma; always_inline, as exp_avx2.h.
#pragma once

#include "exp_avx2.h"

#include <immintrin.h>

namespace kiln::rt {

[[gnu::always_inline]] inline __m256 absPs256(__m256 x) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
}

/// 0.5 x (1 + erf(x / sqrt 2)), with 1 - erf(z) for z = |x| / sqrt 2 from Abramowitz-Stegun
/// 7.1.26 (absolute error < 1.5e-7) and erf's odd symmetry for the sign.
[[gnu::always_inline]] inline __m256 geluErf256(__m256 x) {
  const __m256 z = _mm256_mul_ps(absPs256(x), _mm256_set1_ps(0.70710678f));
  const __m256 t = _mm256_div_ps(
      _mm256_set1_ps(1.f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  // q = 1 - erf(z); GELU's factor (1 + erf(x / sqrt 2)) is 2 - q for x > 0, q otherwise.
  // ... and 0 past z^2 = 80 (< 1e-35 there), where the product would be denormal (slow).
  const __m256 negZ2 = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z));
  const __m256 live = _mm256_cmp_ps(negZ2, _mm256_set1_ps(-80.f), _CMP_GE_OQ);
  const __m256 q =
      _mm256_and_ps(live, _mm256_mul_ps(_mm256_mul_ps(p, t), expNonPositive256(negZ2)));
  const __m256 positive = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
  const __m256 factor = _mm256_blendv_ps(q, _mm256_sub_ps(_mm256_set1_ps(2.f), q), positive);
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), factor);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3); 1 + tanh(u) = 2 / (1 + e^(-2u))
/// computed from e^(-2|u|) so the exponential never overflows.
[[gnu::always_inline]] inline __m256 geluTanh256(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u =
      _mm256_mul_ps(_mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x), _mm256_set1_ps(0.79788456f));
  const __m256 e = expNonPositive256(_mm256_mul_ps(absPs256(u), _mm256_set1_ps(-2.f)));
  const __m256 inv = _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(_mm256_set1_ps(1.f), e));
  const __m256 negative = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 factor = _mm256_blendv_ps(inv, _mm256_mul_ps(inv, e), negative);
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), factor);
}

} // namespace kiln::rt
