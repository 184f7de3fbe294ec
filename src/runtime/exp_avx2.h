// e^x for x <= 0 on 8 floats for the AVX2 attention kernels (softmax of shifted scores).
// Include only from files compiled with -mavx2 -mfma. AVX2 has no scalef, so 2^n is built in
// the exponent bits.
#pragma once

#include <immintrin.h>

namespace kiln::rt {

/// 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, p a degree-5 minimax polynomial for e^r (relative
/// error 1.4e-7 with float coefficients), ln2 one float, which adds |n| * 1.9e-9 of relative
/// error: ~2e-7 where the softmax's weights matter, 4.5e-7 at most (near 2^-125). Below -87.68
/// (where e^x is denormal) and at -inf the result is exactly 0: n = -127 puts 0 in the
/// exponent bits.
/// Written for the softmax loop, which was bound by this chain (Zen 2, 8 x 128 floats in L1:
/// 4.6 ns a vector with the degree-6 Taylor polynomial by Horner's scheme, ln2 in two parts,
/// a compare and mask for the zeros, against 3.0 ns): n is rounded by adding 1.5 * 2^23 (+ 127,
/// the exponent bias, which then sits in the low bits for the shift into 2^n), and p runs
/// in 2 dependent steps after r^2.
/// always_inline: each includer gets its own copy, compiled for its own ISA.
[[gnu::always_inline]] inline __m256 expNonPositive256(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-88.f)); // NaN is the first operand: it becomes -88
  const __m256 shifter = _mm256_set1_ps(12582912.f + 127.f);
  const __m256 biased = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), shifter);
  const __m256 n = _mm256_sub_ps(biased, shifter); // round(x / ln2), exactly
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693147182f), x);
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 a = _mm256_fmadd_ps(r, _mm256_set1_ps(0.9999997f), _mm256_set1_ps(1.0000001f));
  const __m256 b = _mm256_fmadd_ps(r, _mm256_set1_ps(0.16667575f), _mm256_set1_ps(0.49998894f));
  const __m256 c = _mm256_fmadd_ps(r, _mm256_set1_ps(0.008297655f), _mm256_set1_ps(0.041915383f));
  const __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(c, r2, b), r2, a);
  const __m256i bits = _mm256_slli_epi32(_mm256_castps_si256(biased), 23); // (n + 127) << 23
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

} // namespace kiln::rt
