// Scalar semantics of loop-IR ops on host values. Shared by constant folding in the
// expression builders and by the interpreter, so both agree with generated code.
#pragma once

#include "ir/dtype.h"
#include "loop/ops.h"

#include <cstdint>

namespace kiln::loop {

/// A host scalar: floats in `f`, integers and bools in `i`.
struct Scalar {
  double f = 0;
  int64_t i = 0;
};

/// Rounds to the precision/range of t (float32, float16, bfloat16, float8/4 without
/// saturation; wraps integers, int4/int2 included). evalCast applies Cast's saturation.
Scalar normalize(DType t, Scalar s);
Scalar evalUnary(UnaryOp op, DType t, Scalar a);
/// `in` is the operand dtype; the result dtype is bool for predicates, else `in`.
Scalar evalBinary(BinaryOp op, DType in, Scalar a, Scalar b);
Scalar evalCast(DType from, DType to, Scalar a);
double asDouble(DType t, Scalar s);

float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bf16ToFloat(uint16_t h);
uint16_t floatToBf16(float f);
/// The stored bits of a float16/bfloat16/float8/float4 value (rounded to nearest even, not
/// saturating: ±inf stays inf in e5m2, NaN elsewhere), and the value of such bits.
uint32_t narrowFloatBits(DType t, double v);
double narrowFloatValue(DType t, uint32_t bits);

} // namespace kiln::loop
