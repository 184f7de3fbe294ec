// The constants of the attention kernels' e^x (exp_avx2.h, exp_avx512.h): one range reduction
// and one polynomial for both ISAs, kept here so a refit changes both.
#pragma once

namespace kiln::rt::exp_poly {

/// x = n ln2 + r: n = round(x * kLog2e) by adding kRoundShift (1.5 * 2^23, which leaves an
/// integer-valued float's integer in the low mantissa bits) and subtracting it again.
inline constexpr float kLog2e = 1.44269504f;
inline constexpr float kLn2 = 0.693147182f; // one float: |n| * 1.9e-9 of relative error
inline constexpr float kRoundShift = 12582912.f;

/// e^r ~ kC[0] + kC[1] r + ... + kC[5] r^5 on |r| <= ln2 / 2: a degree-5 minimax fit, relative
/// error 1.4e-7 with these float coefficients.
inline constexpr float kC[6] = {1.0000001f,  0.9999997f,   0.49998894f,
                                0.16667575f, 0.041915383f, 0.008297655f};

} // namespace kiln::rt::exp_poly
