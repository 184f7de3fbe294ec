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

/// Rounds to the precision/range of t (float32, float16, bfloat16; wraps integers).
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

} // namespace kiln::loop
