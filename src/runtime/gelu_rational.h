// GELU for the GEMM epilogues on any of kiln's vector types V (simd_avx2.h, simd_avx512.h):
// erf and tanh as rational fits in the square of their clamped argument, t P(t^2) / Q(t^2).
// Include only from files compiled for V's ISA; always_inline, so each includer compiles its
// own copy.
//
// Why rational fits: the Abramowitz-Stegun erf (1 - erf through e^(-z^2)) and the tanh
// through e^(-2|u|) took 25 and 20 cycles per 8 floats on Zen 3 and cost fc1 GEMMs 6-7% of
// their time; these take 13 (docs/perf.md, session 34). Evaluated in float their absolute
// error stays below 2.5e-7 (4 float ULPs at 1; tests/runtime/gemm_test.cpp checks 4e-7 over
// the whole range). The coefficients are the degree 13 / 8 (erf) and 13 / 6 (tanh) minimax
// fits of XLA's and Eigen's float erf and tanh.
#pragma once

#include <initializer_list>

namespace kiln::rt {

/// 0.5 x (1 + erf(x / sqrt 2)), erf's argument clamped to [-4, 4] (erf(4) = 1 - 1.5e-8).
/// NaN stays NaN (through x / 2), +inf gives +inf, -inf gives NaN (-inf * 0, as ONNX's).
template <class V>
[[gnu::always_inline]] inline typename V::Reg geluErfRational(typename V::Reg x) {
  using R = typename V::Reg;
  const R z = V::min(V::max(V::mul(x, V::bcast(0.70710678f)), V::bcast(-4.f)), V::bcast(4.f));
  const R z2 = V::mul(z, z);
  R p = V::bcast(-2.72614225801306e-10f);
#pragma GCC unroll 8
  for (float c : {2.77068142495902e-08f, -2.10102402082508e-06f, -5.69250639462346e-05f,
                  -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f})
    p = V::fma(p, z2, V::bcast(c));
  R q = V::bcast(-1.45660718464996e-05f);
#pragma GCC unroll 8
  for (float c : {-2.13374055278905e-04f, -1.68282697438203e-03f, -7.37332916720468e-03f,
                  -1.42647390514189e-02f})
    q = V::fma(q, z2, V::bcast(c));
  const R half = V::mul(x, V::bcast(0.5f));
  return V::fma(half, V::div(V::mul(z, p), q), half);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) clamped to +-7.9053 (past it tanh
/// rounds to +-1 within 3e-7). NaN and +-inf: as geluErfRational.
template <class V>
[[gnu::always_inline]] inline typename V::Reg geluTanhRational(typename V::Reg x) {
  using R = typename V::Reg;
  const R x3 = V::mul(V::mul(x, x), x);
  const R u = V::mul(V::fma(x3, V::bcast(0.044715f), x), V::bcast(0.79788456f));
  const R v = V::min(V::max(u, V::bcast(-7.90531110763549805f)), V::bcast(7.90531110763549805f));
  const R v2 = V::mul(v, v);
  R p = V::bcast(-2.76076847742355e-16f);
#pragma GCC unroll 8
  for (float c : {2.00018790482477e-13f, -8.60467152213735e-11f, 5.12229709037114e-08f,
                  1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f})
    p = V::fma(p, v2, V::bcast(c));
  R q = V::bcast(1.19825839466702e-06f);
#pragma GCC unroll 8
  for (float c : {1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f})
    q = V::fma(q, v2, V::bcast(c));
  const R half = V::mul(x, V::bcast(0.5f));
  return V::fma(half, V::div(V::mul(v, p), q), half);
}

} // namespace kiln::rt
