// Short names for building loop-IR value expressions in op lowerings with a lot of
// arithmetic (Resize, RNNs, GridSample, RoiAlign): add(a, b) reads better than
// loop::binary(BinaryOp::Add, a, b) in a bicubic kernel.
#pragma once

#include "loop/vexpr.h"

namespace kiln::lower::vmath {

using loop::BinaryOp;
using loop::VRef;

inline VRef add(VRef a, VRef b) {
  return loop::binary(BinaryOp::Add, a, b);
}
inline VRef sub(VRef a, VRef b) {
  return loop::binary(BinaryOp::Sub, a, b);
}
inline VRef mul(VRef a, VRef b) {
  return loop::binary(BinaryOp::Mul, a, b);
}
inline VRef divv(VRef a, VRef b) {
  return loop::binary(BinaryOp::Div, a, b);
}
inline VRef vmax(VRef a, VRef b) {
  return loop::binary(BinaryOp::Max, a, b);
}
inline VRef vmin(VRef a, VRef b) {
  return loop::binary(BinaryOp::Min, a, b);
}
inline VRef lt(VRef a, VRef b) {
  return loop::binary(BinaryOp::Lt, a, b);
}
inline VRef gt(VRef a, VRef b) {
  return loop::binary(BinaryOp::Gt, a, b);
}
/// a && b; a null `a` means "true" (for accumulating conditions).
inline VRef land(VRef a, VRef b) {
  return a ? loop::binary(BinaryOp::And, a, b) : b;
}
inline VRef lor(VRef a, VRef b) {
  return loop::binary(BinaryOp::Or, a, b);
}
/// A floating constant of type t.
inline VRef fc(DType t, double v) {
  return loop::constant(t, v);
}
/// An int64 constant.
inline VRef ic(int64_t v) {
  return loop::constantInt(DType::Int64, v);
}
/// A sym expression (a dim or index) as a value of type t.
inline VRef symF(sym::Expr e, DType t) {
  return loop::cast(loop::symInt(e), t);
}

} // namespace kiln::lower::vmath
