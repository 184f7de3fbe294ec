#include "loop/scalar.h"

#include "kiln/prelude.h"
#include "support/error.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>

namespace kiln::loop {

namespace {
// Integer folding follows two's complement like the generated code on x86 (ONNX leaves
// overflow undefined; C++ makes it UB, which a hostile model must not reach).
template <class Op> int64_t wrapping(int64_t a, int64_t b, Op op) {
  return static_cast<int64_t>(op(static_cast<uint64_t>(a), static_cast<uint64_t>(b)));
}
// A float folded into int64: NaN 0, out of range the nearest end.
int64_t saturatingInt64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 0x1p63) return INT64_MAX;
  if (v < -0x1p63) return INT64_MIN;
  return static_cast<int64_t>(v);
}
} // namespace

// One implementation of the half/bfloat16 conversions: the prelude's, which generated
// code uses too, so folding and run time round identically.
float halfToFloat(uint16_t h) {
  return kiln_h2f(h);
}
uint16_t floatToHalf(float f) {
  return kiln_f2h(f);
}
float bf16ToFloat(uint16_t h) {
  return kiln_bf2f(h);
}
uint16_t floatToBf16(float f) {
  return kiln_f2bf(f);
}

uint32_t narrowFloatBits(DType t, double v) {
  if (t == DType::Float16) return floatToHalf(static_cast<float>(v));
  if (t == DType::BFloat16) return floatToBf16(static_cast<float>(v));
  int f = minifloatFormat(t);
  KILN_ASSERT(f >= 0, "narrowFloatBits on {}", dtypeName(t));
  return kiln_mf_encode(v, f, 0); // a value of t already: only ±inf/NaN reach the edges
}

double narrowFloatValue(DType t, uint32_t bits) {
  if (t == DType::Float16) return halfToFloat(static_cast<uint16_t>(bits));
  if (t == DType::BFloat16) return bf16ToFloat(static_cast<uint16_t>(bits));
  int f = minifloatFormat(t);
  KILN_ASSERT(f >= 0, "narrowFloatValue on {}", dtypeName(t));
  return kiln_mf_decode(bits, f);
}

Scalar normalize(DType t, Scalar s) {
  if (minifloatFormat(t) >= 0) { // no saturation: ±inf is a value of e5m2 (Cast saturates)
    s.f = kiln_mf_round(s.f, minifloatFormat(t), 0);
    return s;
  }
  if (isSubByteInt(t)) {
    s.i = kiln_wrap_bits<int64_t>(s.i, dtypeBits(t), isSigned(t));
    return s;
  }
  switch (t) {
  case DType::Float32:
    s.f = static_cast<float>(s.f);
    break;
  case DType::Float16:
    s.f = halfToFloat(floatToHalf(static_cast<float>(s.f)));
    break;
  case DType::BFloat16:
    s.f = bf16ToFloat(floatToBf16(static_cast<float>(s.f)));
    break;
  case DType::Int8:
    s.i = static_cast<int8_t>(s.i);
    break;
  case DType::Int16:
    s.i = static_cast<int16_t>(s.i);
    break;
  case DType::Int32:
    s.i = static_cast<int32_t>(s.i);
    break;
  case DType::UInt8:
    s.i = static_cast<uint8_t>(s.i);
    break;
  case DType::UInt16:
    s.i = static_cast<uint16_t>(s.i);
    break;
  case DType::UInt32:
    s.i = static_cast<uint32_t>(s.i);
    break;
  case DType::Bool:
    s.i = s.i != 0;
    break;
  default:
    break;
  }
  return s;
}

double asDouble(DType t, Scalar s) {
  if (isFloat(t)) return s.f;
  if (t == DType::UInt64) return static_cast<double>(static_cast<uint64_t>(s.i));
  return static_cast<double>(s.i);
}

Scalar evalUnary(UnaryOp op, DType t, Scalar a) {
  Scalar r;
  bool fl = isFloat(t);
  double x = fl ? a.f : static_cast<double>(a.i);
  auto fres = [&](double v) {
    if (fl)
      r.f = v;
    else // NaN and out-of-range results (log 0 of an integer) saturate instead of UB
      r.i = saturatingInt64(v);
  };
  switch (op) {
  case UnaryOp::Neg:
    fl ? (void)(r.f = -a.f) : (void)(r.i = wrapping(0, a.i, std::minus<uint64_t>()));
    break;
  case UnaryOp::Abs:
    fl ? (void)(r.f = std::fabs(a.f))
       : (void)(r.i = a.i < 0 ? wrapping(0, a.i, std::minus<uint64_t>()) : a.i);
    break;
  case UnaryOp::Exp:
    fres(std::exp(x));
    break;
  case UnaryOp::Log:
    fres(std::log(x));
    break;
  case UnaryOp::Log10:
    fres(std::log10(x));
    break;
  case UnaryOp::Sqrt:
    fres(std::sqrt(x));
    break;
  case UnaryOp::Tanh:
    fres(std::tanh(x));
    break;
  case UnaryOp::Erf:
    fres(std::erf(x));
    break;
  case UnaryOp::Sigmoid:
    fres(1.0 / (1.0 + std::exp(-x)));
    break;
  case UnaryOp::Floor:
    fres(std::floor(x));
    break;
  case UnaryOp::Ceil:
    fres(std::ceil(x));
    break;
  case UnaryOp::Round:
    fres(std::nearbyint(x));
    break;
  case UnaryOp::Sin:
    fres(std::sin(x));
    break;
  case UnaryOp::Cos:
    fres(std::cos(x));
    break;
  case UnaryOp::Tan:
    fres(std::tan(x));
    break;
  case UnaryOp::Asin:
    fres(std::asin(x));
    break;
  case UnaryOp::Acos:
    fres(std::acos(x));
    break;
  case UnaryOp::Atan:
    fres(std::atan(x));
    break;
  case UnaryOp::Sinh:
    fres(std::sinh(x));
    break;
  case UnaryOp::Cosh:
    fres(std::cosh(x));
    break;
  case UnaryOp::Asinh:
    fres(std::asinh(x));
    break;
  case UnaryOp::Acosh:
    fres(std::acosh(x));
    break;
  case UnaryOp::Atanh:
    fres(std::atanh(x));
    break;
  case UnaryOp::Not:
    r.i = !a.i;
    break;
  case UnaryOp::BitNot:
    r.i = ~a.i;
    break;
  case UnaryOp::Sign:
    fl ? (void)(r.f = (a.f > 0) - (a.f < 0)) : (void)(r.i = (a.i > 0) - (a.i < 0));
    break;
  case UnaryOp::Reciprocal:
    fres(1.0 / x);
    break;
  case UnaryOp::IsNaN:
    r.i = std::isnan(x);
    break;
  case UnaryOp::IsPosInf:
    r.i = std::isinf(x) && x > 0;
    break;
  case UnaryOp::IsNegInf:
    r.i = std::isinf(x) && x < 0;
    break;
  }
  return unaryIsPredicate(op) ? normalize(DType::Bool, r) : normalize(t, r);
}

Scalar evalBinary(BinaryOp op, DType t, Scalar a, Scalar b) {
  Scalar r;
  bool fl = isFloat(t);
  bool uns = t == DType::UInt64;
  double x = asDouble(t, a), y = asDouble(t, b);
  switch (op) {
  case BinaryOp::Add:
    fl ? (void)(r.f = x + y) : (void)(r.i = wrapping(a.i, b.i, std::plus<uint64_t>()));
    break;
  case BinaryOp::Sub:
    fl ? (void)(r.f = x - y) : (void)(r.i = wrapping(a.i, b.i, std::minus<uint64_t>()));
    break;
  case BinaryOp::Mul:
    fl ? (void)(r.f = x * y) : (void)(r.i = wrapping(a.i, b.i, std::multiplies<uint64_t>()));
    break;
  case BinaryOp::Div:
    if (fl)
      r.f = x / y;
    else if (b.i == -1 && !uns) // INT64_MIN / -1 traps; it wraps to itself
      r.i = wrapping(0, a.i, std::minus<uint64_t>());
    else if (b.i != 0)
      r.i = uns ? static_cast<int64_t>(static_cast<uint64_t>(a.i) / static_cast<uint64_t>(b.i))
                : a.i / b.i;
    break;
  case BinaryOp::Pow:
    if (fl)
      r.f = std::pow(x, y);
    else
      r.i = saturatingInt64(std::pow(x, y));
    break;
  case BinaryOp::Max:
    if (fl)
      r.f = (std::isnan(x) || std::isnan(y)) ? NAN : std::max(x, y);
    else
      r.i = uns ? (static_cast<uint64_t>(a.i) > static_cast<uint64_t>(b.i) ? a.i : b.i)
                : std::max(a.i, b.i);
    break;
  case BinaryOp::Min:
    if (fl)
      r.f = (std::isnan(x) || std::isnan(y)) ? NAN : std::min(x, y);
    else
      r.i = uns ? (static_cast<uint64_t>(a.i) < static_cast<uint64_t>(b.i) ? a.i : b.i)
                : std::min(a.i, b.i);
    break;
  case BinaryOp::Fmod:
    if (fl)
      r.f = std::fmod(x, y);
    else if (b.i != 0)
      r.i = b.i == -1 ? 0 : a.i % b.i;
    break;
  case BinaryOp::Mod:
    if (fl) {
      r.f = std::fmod(x, y);
      if (r.f != 0 && ((r.f < 0) != (y < 0))) r.f += y;
    } else if (b.i != 0) {
      r.i = b.i == -1 ? 0 : a.i % b.i;
      if (r.i != 0 && ((r.i < 0) != (b.i < 0))) r.i += b.i;
    }
    break;
  case BinaryOp::And:
    r.i = a.i && b.i;
    break;
  case BinaryOp::Or:
    r.i = a.i || b.i;
    break;
  case BinaryOp::Xor:
    r.i = (a.i != 0) != (b.i != 0);
    break;
  case BinaryOp::Eq:
    r.i = fl ? x == y : a.i == b.i;
    break;
  case BinaryOp::Ne:
    r.i = fl ? x != y : a.i != b.i;
    break;
  case BinaryOp::Lt:
    r.i = (fl || uns) ? x < y : a.i < b.i;
    break;
  case BinaryOp::Le:
    r.i = (fl || uns) ? x <= y : a.i <= b.i;
    break;
  case BinaryOp::Gt:
    r.i = (fl || uns) ? x > y : a.i > b.i;
    break;
  case BinaryOp::Ge:
    r.i = (fl || uns) ? x >= y : a.i >= b.i;
    break;
  case BinaryOp::BitAnd:
    r.i = a.i & b.i;
    break;
  case BinaryOp::BitOr:
    r.i = a.i | b.i;
    break;
  case BinaryOp::BitXor:
    r.i = a.i ^ b.i;
    break;
  case BinaryOp::ShiftL:
    r.i = static_cast<uint64_t>(b.i) >= 64
              ? 0
              : static_cast<int64_t>(static_cast<uint64_t>(a.i) << b.i);
    break;
  case BinaryOp::ShiftR:
    r.i = static_cast<uint64_t>(b.i) >= 64
              ? 0
              : static_cast<int64_t>(static_cast<uint64_t>(a.i) >> b.i);
    break;
  }
  return binaryIsPredicate(op) ? normalize(DType::Bool, r) : normalize(t, r);
}

Scalar evalCast(DType from, DType to, Scalar a) {
  Scalar r;
  if (int f = minifloatFormat(to); f >= 0) { // ONNX Cast's default saturate = 1
    r.f = kiln_mf_round(asDouble(from, a), f, 1);
    return r;
  }
  if (isFloat(to)) {
    r.f = asDouble(from, a);
    return normalize(to, r);
  }
  if (to == DType::Bool) {
    r.i = isFloat(from) ? (a.f != 0) : (a.i != 0);
    return r;
  }
  if (isFloat(from)) {
    double v = a.f;
    if (std::isnan(v) || std::isinf(v))
      r.i = 0;
    else if (to == DType::UInt64 && v >= 0x1p63)
      r.i = v >= 0x1p64 ? -1 : static_cast<int64_t>(static_cast<uint64_t>(v));
    else
      r.i = saturatingInt64(v);
    return normalize(to, r);
  }
  r.i = a.i;
  return normalize(to, r);
}

} // namespace kiln::loop
