// e^x for x <= 0 on 8 floats for the AVX2 attention kernels (softmax of shifted scores).
// Include only from files compiled with -mavx2 -mfma. AVX2 has no scalef, so 2^n is built in
// the exponent bits.
#pragma once

#include "exp_poly.h"

#include <immintrin.h>

namespace kiln::rt {

/// 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, p a degree-5 minimax polynomial for e^r (relative
/// error 1.4e-7; exp_poly.h), ln2 one float, which adds |n| * 1.9e-9 of relative
/// error (~2e-7 where the softmax's weights matter; largest absolute error 1.8e-7, at 1).
/// Results are never denormal (slow): from n = -126 on (x below -86.99, e^x below 2.4e-38)
/// the result is exactly 0, as at -inf; NaN gives 0.
/// Written for the softmax loop, which was bound by this chain (Zen 2, 8 x 128 floats in L1:
/// 4.6 ns a vector with the degree-6 Taylor polynomial by Horner's scheme, ln2 in two parts,
/// a compare and mask for the zeros, against 3.2 ns): n is rounded by adding 1.5 * 2^23
/// (+ 127, the exponent bias, which then sits in the low bits), p runs in 2 dependent steps
/// after r^2, and the result is 2p * 2^(n - 1) with n + 126 saturated at 0 in the exponent
/// bits, which puts the zeros there without a compare.
/// always_inline: each includer gets its own copy, compiled for its own ISA.
[[gnu::always_inline]] inline __m256 expNonPositive256(__m256 x) {
  using namespace exp_poly;
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.f)); // NaN is the first operand: it becomes -88
  const __m256 shifter = _mm256_set1_ps(kRoundShift + 127.f);
  const __m256 biased = _mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), shifter);
  const __m256 n = _mm256_sub_ps(biased, shifter); // round(x / ln2), exactly
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2), x);
  const __m256 r2 = _mm256_mul_ps(r, r);
  // 2 p(r): the coefficients doubled (exactly), for the 2^(n - 1) below.
  auto pair = [r](int i) {
    return _mm256_fmadd_ps(r, _mm256_set1_ps(2 * kC[i + 1]), _mm256_set1_ps(2 * kC[i]));
  };
  const __m256 p2 = _mm256_fmadd_ps(_mm256_fmadd_ps(pair(4), r2, pair(2)), r2, pair(0));
  // n + 127 is in the low 16 bits of biased (n >= -127): minus 1, saturated at 0.
  const __m256i e = _mm256_subs_epu16(_mm256_castps_si256(biased), _mm256_set1_epi32(1));
  return _mm256_mul_ps(p2, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

} // namespace kiln::rt
