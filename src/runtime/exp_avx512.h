// e^x for x <= 0 on 16 floats for the AVX-512 attention kernels (softmax of shifted scores).
// Include only from files compiled with -mavx512f. The same reduction and polynomial as
// exp_avx2.h; here scalef builds 2^n and a mask register gives the exact zeros.
#pragma once

#include "exp_poly.h"

#include <immintrin.h>

namespace kiln::rt {

/// 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, p a degree-5 minimax polynomial for e^r (relative
/// error 1.4e-7; exp_poly.h), ln2 one float (|n| * 1.9e-9 more: ~2e-7 where the
/// softmax's weights matter); below -87.3 (where e^x is denormal) and at -inf the result is
/// exactly 0. Written for latency, as exp_avx2.h: n rounded by the 1.5 * 2^23 shift, p in 2
/// dependent steps after r^2 (was: roundscale, ln2 in two parts, Horner's 6 steps).
/// always_inline: each includer gets its own copy, compiled for its own ISA.
[[gnu::always_inline]] inline __m512 expNonPositive512(__m512 x) {
  using namespace exp_poly;
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 shifter = _mm512_set1_ps(kRoundShift);
  const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(kLog2e), shifter), shifter);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2), x);
  const __m512 r2 = _mm512_mul_ps(r, r);
  auto pair = [r](int i) {
    return _mm512_fmadd_ps(r, _mm512_set1_ps(kC[i + 1]), _mm512_set1_ps(kC[i]));
  };
  const __m512 p = _mm512_fmadd_ps(_mm512_fmadd_ps(pair(4), r2, pair(2)), r2, pair(0));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

} // namespace kiln::rt
