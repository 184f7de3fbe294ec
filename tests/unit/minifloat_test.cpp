// The float8/float4 codec (include/kiln/prelude.h: kiln_mf_encode/decode, used by generated
// kernels and by constant folding) against a brute-force float64 reference written from the
// formats' definitions: every code's value, and for each input the nearest code, ties to the
// even code, with ONNX Cast's saturate / no-saturate overflow rules. Also the int4/int2 wrap
// and the host Cast/normalize semantics built on the codec.
#include "kiln/prelude.h"
#include "loop/scalar.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

struct Format {
  int id;
  const char *name;
  int ebits, mbits, bias;
  enum Kind { Ieee, Fn, Fnuz, NoSpecials } kind;
  double max;
};

const Format kFormats[] = {
    {KILN_F8E4M3FN, "e4m3fn", 4, 3, 7, Format::Fn, 448},
    {KILN_F8E4M3FNUZ, "e4m3fnuz", 4, 3, 8, Format::Fnuz, 240},
    {KILN_F8E5M2, "e5m2", 5, 2, 15, Format::Ieee, 57344},
    {KILN_F8E5M2FNUZ, "e5m2fnuz", 5, 2, 16, Format::Fnuz, 57344},
    {KILN_F4E2M1, "e2m1", 2, 1, 1, Format::NoSpecials, 6},
};

int width(const Format &f) {
  return 1 + f.ebits + f.mbits;
}

/// The value of a code straight from the definition (sign, biased exponent, fraction).
double refDecode(const Format &f, unsigned code) {
  unsigned sign = code >> (width(f) - 1), e = (code >> f.mbits) & ((1u << f.ebits) - 1),
           m = code & ((1u << f.mbits) - 1);
  unsigned emax = (1u << f.ebits) - 1, mmax = (1u << f.mbits) - 1;
  if (f.kind == Format::Fnuz && code == (1u << (width(f) - 1))) return NAN;
  if (f.kind == Format::Fn && e == emax && m == mmax) return NAN;
  if (f.kind == Format::Ieee && e == emax) return m ? NAN : (sign ? -INFINITY : INFINITY);
  double frac = e == 0 ? m / std::pow(2.0, f.mbits) : 1 + m / std::pow(2.0, f.mbits);
  double v = frac * std::pow(2.0, (e == 0 ? 1 : static_cast<int>(e)) - f.bias);
  return sign ? -v : v;
}

/// ONNX Cast of x to format f: NaN when the result is NaN, else the code's value.
double refCast(const Format &f, double x, bool saturate) {
  if (std::isnan(x)) return f.kind == Format::NoSpecials ? -0.0 : NAN; // float4: ONNX gives 0x8
  bool overflowToMax = saturate || f.kind == Format::NoSpecials;
  double overflow = overflowToMax            ? std::copysign(f.max, x)
                    : f.kind == Format::Ieee ? std::copysign(INFINITY, x)
                                             : NAN;
  if (std::isinf(x) || std::fabs(x) >= 4 * f.max) return overflow; // far past max+ulp
  // Nearest finite code of x's sign; one step past max stands for "overflow".
  double best = NAN, bestDist = INFINITY;
  unsigned bestCode = 0;
  const unsigned n = 1u << width(f);
  std::vector<std::pair<double, unsigned>> cands;
  for (unsigned c = 0; c < n; ++c) {
    double v = refDecode(f, c);
    if (std::isfinite(v)) cands.push_back({v, c});
  }
  // The code after max's (max + one ulp) has odd/even parity like a real code would.
  unsigned maxCode = 0;
  for (auto &[v, c] : cands)
    if (v == f.max) maxCode = c;
  double ulp = f.max - refDecode(f, maxCode - 1);
  cands.push_back({f.max + ulp, maxCode + 1});
  cands.push_back({-(f.max + ulp), maxCode + 1});
  for (auto &[v, c] : cands) {
    if (v != 0 && (v < 0) != (x < 0)) continue;
    double d = std::fabs(v - x);
    if (d < bestDist || (d == bestDist && (c & 1) == 0 && (bestCode & 1) == 1)) {
      best = v;
      bestDist = d;
      bestCode = c;
    }
  }
  if (std::fabs(best) > f.max) return overflow;
  if (best == 0) return f.kind == Format::Fnuz ? 0.0 : std::copysign(0.0, x);
  return best;
}

bool sameValue(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

std::vector<double> probeInputs(const Format &f) {
  std::vector<double> xs = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1e-30, -1e-30, 1e30, -1e30};
  std::vector<double> vals;
  for (unsigned c = 0; c < (1u << width(f)); ++c)
    if (std::isfinite(refDecode(f, c))) vals.push_back(refDecode(f, c));
  std::sort(vals.begin(), vals.end());
  for (size_t i = 0; i < vals.size(); ++i) {
    xs.push_back(vals[i]);
    if (i + 1 < vals.size()) { // ties and their neighbours, subnormal ones included
      double mid = (vals[i] + vals[i + 1]) / 2;
      xs.insert(xs.end(), {mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)});
    }
  }
  double ulp = f.max - vals[vals.size() - 2];
  for (double s : {1.0, -1.0}) // around the overflow threshold
    for (double d : {0.25, 0.5, 0.75, 1.0, 2.0})
      xs.insert(xs.end(), {s * (f.max + d * ulp), std::nextafter(s * (f.max + 0.5 * ulp), 0.0)});
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::uniform_int_distribution<int> ex(-30, 20);
  for (int i = 0; i < 4000; ++i)
    xs.push_back((i & 1 ? -1 : 1) * std::ldexp(mant(rng), ex(rng)));
  return xs;
}

TEST(Minifloat, DecodeMatchesDefinitionForEveryCode) {
  for (const Format &f : kFormats)
    for (unsigned c = 0; c < (1u << width(f)); ++c)
      EXPECT_TRUE(sameValue(kiln_mf_decode(c, f.id), refDecode(f, c)))
          << f.name << " code " << c << ": " << kiln_mf_decode(c, f.id) << " vs "
          << refDecode(f, c);
}

TEST(Minifloat, EncodeRoundsToNearestEvenWithOnnxOverflowRules) {
  for (const Format &f : kFormats)
    for (bool sat : {true, false})
      for (double x : probeInputs(f)) {
        double want = refCast(f, x, sat);
        double gotD = kiln_mf_decode(kiln_mf_encode(x, f.id, sat), f.id);
        double gotF = kiln_mf_decode(kiln_mf_encode(static_cast<float>(x), f.id, sat), f.id);
        EXPECT_TRUE(sameValue(gotD, want))
            << f.name << " sat=" << sat << " x=" << x << ": " << gotD << ", want " << want;
        if (static_cast<double>(static_cast<float>(x)) == x || std::isnan(x)) {
          EXPECT_TRUE(sameValue(gotF, want))
              << f.name << " (float) sat=" << sat << " x=" << x << ": " << gotF;
        }
      }
}

TEST(Minifloat, CodesOfKnownValues) {
  // From ONNX's node tests (test_cast_FLOAT_to_FLOAT8*, test_cast_FLOAT_to_FLOAT4E2M1).
  EXPECT_EQ(kiln_mf_encode(0.4789254665374756f, KILN_F8E4M3FN, 1), 47u);
  EXPECT_EQ(kiln_mf_encode(1e6f, KILN_F8E4M3FN, 1), 126u); // saturated to 448
  EXPECT_EQ(kiln_mf_encode(-INFINITY, KILN_F8E4M3FN, 1), 254u);
  EXPECT_EQ(kiln_mf_encode(NAN, KILN_F8E4M3FN, 1), 127u);
  EXPECT_EQ(kiln_mf_encode(-1e-7f, KILN_F8E4M3FN, 1), 128u); // -0
  EXPECT_EQ(kiln_mf_encode(-1e-7f, KILN_F8E4M3FNUZ, 0), 0u); // fnuz has no -0
  EXPECT_EQ(kiln_mf_encode(1e6f, KILN_F8E4M3FNUZ, 0), 128u); // NaN
  EXPECT_EQ(kiln_mf_encode(INFINITY, KILN_F8E5M2, 1), 123u);
  EXPECT_EQ(kiln_mf_encode(INFINITY, KILN_F8E5M2, 0), 124u);
  EXPECT_EQ(kiln_mf_encode(NAN, KILN_F8E5M2, 1), 126u);
  EXPECT_EQ(kiln_mf_encode(-3.5f, KILN_F4E2M1, 1), 0xEu);                // tie 3|4 → 4 (even)
  EXPECT_EQ(kiln_mf_encode(9.0f, KILN_F4E2M1, 0), 0x7u);                 // float4 always saturates
  EXPECT_EQ(kiln_mf_encode(NAN, KILN_F4E2M1, 1), 0x8u);                  // ONNX's reference: -0
  EXPECT_EQ(kiln_mf_encode(std::ldexp(1.0, -9), KILN_F8E4M3FN, 1), 1u);  // smallest subnormal
  EXPECT_EQ(kiln_mf_encode(std::ldexp(1.0, -10), KILN_F8E4M3FN, 1), 0u); // tie to 0 (even)
  EXPECT_EQ(kiln_mf_encode(std::ldexp(3.0, -10), KILN_F8E4M3FN, 1), 2u); // 1.5 ulp → 2 ulp
  EXPECT_EQ(kiln_mf_encode(std::ldexp(3.0, -11), KILN_F8E4M3FN, 1), 1u); // 0.75 ulp → 1 ulp
}

/// ONNX Cast to float8e8m0 of a normal float32 x, from the definition in float64: the power
/// of two 2^k with 2^k <= |x| < 2^(k+1), then "up" takes 2^(k+1) when |x| > 2^k, "nearest"
/// when |x| >= 1.5 * 2^k (ONNX's guard bit; a tie rounds up), "down" never; past 2^127 it is
/// 2^127 with saturate, else NaN (code 0xff). Returns the code.
unsigned refE8M0(double x, int mode, bool saturate) {
  double a = std::fabs(x);
  int k = std::ilogb(a);
  double p = std::ldexp(1.0, k);
  bool up = mode == 0 ? a > p : mode == 2 ? a >= 1.5 * p : false;
  int code = k + 127 + (up ? 1 : 0);
  if (code > 254) return saturate ? 254u : 255u;
  return static_cast<unsigned>(code);
}

TEST(Minifloat, E8M0FollowsOnnxRoundModes) {
  for (unsigned c = 0; c < 255; ++c)
    EXPECT_EQ(kiln_mf_decode(c, KILN_F8E8M0), std::ldexp(1.0f, static_cast<int>(c) - 127));
  EXPECT_TRUE(std::isnan(kiln_mf_decode(255, KILN_F8E8M0)));
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::uniform_int_distribution<int> ex(-126, 127);
  for (int i = 0; i < 20000; ++i) {
    float x = static_cast<float>(std::ldexp(mant(rng), ex(rng)));
    if (i % 3 == 0) x = std::ldexp(1.5f, ex(rng)); // exact ties of "nearest"
    if (i % 5 == 0) x = -x;                        // the sign is dropped
    for (int mode : {0, 1, 2})
      for (bool sat : {true, false})
        EXPECT_EQ(kiln_e8m0_encode(x, sat, mode), refE8M0(x, mode, sat))
            << "x=" << x << " mode=" << mode << " sat=" << sat;
  }
  // From test_cast_e8m0_FLOAT_to_FLOAT8E8M0 (round_mode up, saturate).
  const float in[] = {0.0f, 0.124f, 0.25f, 0.5f, 1.1f, 2.0f, 4.0f, 8.0f};
  const unsigned want[] = {0, 124, 125, 126, 128, 128, 129, 130};
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(kiln_e8m0_encode(in[i], 1, 0), want[i]) << in[i];
  // The codec of stored values keeps every code (2^-127 too, which "up" would move).
  for (unsigned c = 0; c < 256; ++c)
    EXPECT_EQ(kiln_mf_encode(kiln_mf_decode(c, KILN_F8E8M0), KILN_F8E8M0, 0), c);
  EXPECT_EQ(kiln_e8m0_encode(INFINITY, 1, 0), 255u);
  EXPECT_EQ(kiln_e8m0_encode(NAN, 1, 0), 255u);
  EXPECT_EQ(kiln_e8m0_encode(std::ldexp(1.0f, -140), 1, 0), 1u); // subnormal: field 0, rounds up
  EXPECT_EQ(kiln_e8m0_encode(std::ldexp(1.0f, -140), 1, 1), 0u);
  EXPECT_EQ(kiln_e8m0_encode(std::ldexp(1.0f, -140), 1, 2), 0u); // guard bit clear
}

TEST(Minifloat, SubByteIntegersWrap) {
  EXPECT_EQ(kiln_wrap_bits<int8_t>(-9, 4, true), 7);
  EXPECT_EQ(kiln_wrap_bits<int8_t>(8, 4, true), -8);
  EXPECT_EQ(kiln_wrap_bits<int8_t>(-8, 4, true), -8);
  EXPECT_EQ(kiln_wrap_bits<uint8_t>(16, 4, false), 0);
  EXPECT_EQ(kiln_wrap_bits<uint8_t>(-1, 2, false), 3);
  EXPECT_EQ(kiln_wrap_bits<int8_t>(2, 2, true), -2);
}

TEST(Minifloat, HostCastSaturatesAndNormalizeKeepsInf) {
  using kiln::DType;
  namespace L = kiln::loop;
  L::Scalar inf{INFINITY, 0};
  EXPECT_EQ(L::evalCast(DType::Float32, DType::Float8E5M2, inf).f, 57344.0);
  EXPECT_TRUE(std::isinf(L::normalize(DType::Float8E5M2, inf).f));
  EXPECT_TRUE(std::isnan(L::normalize(DType::Float8E4M3FN, inf).f));
  EXPECT_EQ(L::evalCast(DType::Float32, DType::Int4, L::Scalar{-9.0, 0}).i, 7);
  EXPECT_EQ(L::evalCast(DType::Int64, DType::UInt4, L::Scalar{0, 17}).i, 1);
  // float32 → bfloat16 rounds to nearest even: 1 + 2^-8 is a tie (→ 1), 1 + 3·2^-8 one (→ up).
  EXPECT_EQ(L::evalCast(DType::Float32, DType::BFloat16, L::Scalar{1.00390625, 0}).f, 1.0);
  EXPECT_EQ(L::evalCast(DType::Float32, DType::BFloat16, L::Scalar{1.01171875, 0}).f, 1.015625);
}

} // namespace
