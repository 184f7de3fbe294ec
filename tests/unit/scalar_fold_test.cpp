// Constant folding of integers (loop/scalar.cpp) at the edges of int64: the results a
// two's-complement machine gives (what the generated code computes on x86), written out by
// hand here, and never C++ UB (the fuzz tree's UBSan reports any). A model may fold
// INT64_MAX + 20 from a Slice's "to the end" bound; it must not crash or trap the compiler.
#include "loop/scalar.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace {

namespace L = kiln::loop;
using kiln::DType;
using BOp = kiln::loop::BinaryOp;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

int64_t fold(BOp op, int64_t a, int64_t b) {
  return L::evalBinary(op, DType::Int64, L::Scalar{0, a}, L::Scalar{0, b}).i;
}

TEST(ScalarFold, IntegerArithmeticWrapsLikeTwosComplement) {
  EXPECT_EQ(fold(BOp::Add, kMax, 20), kMin + 19);
  EXPECT_EQ(fold(BOp::Sub, kMin, 1), kMax);
  EXPECT_EQ(fold(BOp::Mul, kMax, 2), -2);
  EXPECT_EQ(fold(BOp::Div, kMin, -1), kMin); // traps as a machine division
  EXPECT_EQ(fold(BOp::Div, -7, 2), -3);      // truncates toward zero
  EXPECT_EQ(fold(BOp::Fmod, kMin, -1), 0);
  EXPECT_EQ(fold(BOp::Mod, kMin, -1), 0);
  EXPECT_EQ(fold(BOp::Mod, -7, 3), 2); // sign of the divisor
  EXPECT_EQ(fold(BOp::ShiftL, 1, -1), 0);
  EXPECT_EQ(fold(BOp::ShiftR, 8, 70), 0);
  EXPECT_EQ(fold(BOp::ShiftL, 1, 3), 8);
  EXPECT_EQ(L::evalUnary(L::UnaryOp::Neg, DType::Int64, L::Scalar{0, kMin}).i, kMin);
  EXPECT_EQ(L::evalUnary(L::UnaryOp::Abs, DType::Int64, L::Scalar{0, kMin}).i, kMin);
  EXPECT_EQ(L::evalUnary(L::UnaryOp::Abs, DType::Int64, L::Scalar{0, -5}).i, 5);
}

TEST(ScalarFold, FloatResultsIntoIntegersSaturate) {
  EXPECT_EQ(L::evalUnary(L::UnaryOp::Log, DType::Int64, L::Scalar{0, 0}).i, kMin); // -inf
  EXPECT_EQ(fold(BOp::Pow, 10, 30), kMax);
  EXPECT_EQ(fold(BOp::Pow, 3, 4), 81);
  auto cast = [](double v, DType to) { return L::evalCast(DType::Float64, to, L::Scalar{v, 0}).i; };
  EXPECT_EQ(cast(1e300, DType::Int64), kMax);
  EXPECT_EQ(cast(-1e300, DType::Int64), kMin);
  EXPECT_EQ(cast(NAN, DType::Int64), 0);
  EXPECT_EQ(cast(-2.5, DType::Int64), -2);
  EXPECT_EQ(static_cast<uint64_t>(cast(1e30, DType::UInt64)), UINT64_MAX);
  EXPECT_EQ(static_cast<uint64_t>(cast(0x1p63, DType::UInt64)), uint64_t{1} << 63);
}

} // namespace
