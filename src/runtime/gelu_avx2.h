// GELU on 8 floats for the AVX2 GEMM epilogues (the runtime's GEMM, the bench's own GEMM).
// Include only from files compiled with -mavx2 -mfma; always_inline, so each includer compiles its own copy for its ISA.
#pragma once

#include <immintrin.h>

namespace kiln::rt {

/// 0.5 x (1 + erf(x / sqrt 2)), erf(z) = z P(z^2) / Q(z^2) on z clamped to [-4, 4] (a
/// degree 13 / 8 minimax rational fit of erf, as in XLA's float erf; erf(4) = 1 - 1.5e-8).
/// Evaluated in float its absolute error stays below 2.5e-7 (4 float ULPs at 1). On Zen 3 it
/// takes half the time of Abramowitz-Stegun 7.1.26 with its exponential (13 against 25 cycles
/// per vector), which cost BERT-base's fc1 GEMM 6-7% (docs/perf.md, session 34).
/// NaN stays NaN (through x / 2), +inf gives +inf, -inf gives NaN (-inf * 0, as ONNX's).
[[gnu::always_inline]] inline __m256 geluErf256(__m256 x) {
  const __m256 scaled = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678f));
  const __m256 z = _mm256_min_ps(_mm256_max_ps(scaled, _mm256_set1_ps(-4.f)), _mm256_set1_ps(4.f));
  const __m256 z2 = _mm256_mul_ps(z, z);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-1.60960333262415e-02f));
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(q, z2, _mm256_set1_ps(-1.42647390514189e-02f));
  const __m256 erf = _mm256_div_ps(_mm256_mul_ps(z, p), q);
  const __m256 half = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(half, erf, half);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), tanh(u) = u P(u^2) / Q(u^2) on u
/// clamped to +-7.9053 (a degree 13 / 6 rational fit, as in Eigen's float tanh; past the
/// clamp tanh rounds to +-1 within 3e-7). 13 against 20 cycles per vector on Zen 3 for the
/// form through e^(-2|u|) (docs/perf.md, session 34). NaN, +-inf: as geluErf256.
[[gnu::always_inline]] inline __m256 geluTanh256(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u =
      _mm256_mul_ps(_mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x), _mm256_set1_ps(0.79788456f));
  const __m256 limit = _mm256_set1_ps(7.90531110763549805f);
  const __m256 v =
      _mm256_min_ps(_mm256_max_ps(u, _mm256_sub_ps(_mm256_setzero_ps(), limit)), limit);
  const __m256 v2 = _mm256_mul_ps(v, v);
  __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(2.00018790482477e-13f));
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(-8.60467152213735e-11f));
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(5.12229709037114e-08f));
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(1.48572235717979e-05f));
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(6.37261928875436e-04f));
  p = _mm256_fmadd_ps(p, v2, _mm256_set1_ps(4.89352455891786e-03f));
  __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
  q = _mm256_fmadd_ps(q, v2, _mm256_set1_ps(1.18534705686654e-04f));
  q = _mm256_fmadd_ps(q, v2, _mm256_set1_ps(2.26843463243900e-03f));
  q = _mm256_fmadd_ps(q, v2, _mm256_set1_ps(4.89352518554385e-03f));
  const __m256 tanh = _mm256_div_ps(_mm256_mul_ps(v, p), q);
  const __m256 half = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(half, tanh, half);
}

} // namespace kiln::rt
