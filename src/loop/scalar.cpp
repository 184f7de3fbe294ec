#include "loop/scalar.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace kiln::loop {

float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0 && man == 0) {
    bits = sign;
  } else if (exp == 0) {
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while (!(man & 0x400));
    bits = sign | ((127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) // inf / nan
    return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0));
  if (exp >= 31)
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10)
      return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
    ++half; // carries into the exponent correctly
  return static_cast<uint16_t>(half);
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f))
    return static_cast<uint16_t>((x >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

Scalar normalize(DType t, Scalar s) {
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
  if (isFloat(t))
    return s.f;
  if (t == DType::UInt64)
    return static_cast<double>(static_cast<uint64_t>(s.i));
  return static_cast<double>(s.i);
}

Scalar evalUnary(UnaryOp op, DType t, Scalar a) {
  Scalar r;
  bool fl = isFloat(t);
  double x = fl ? a.f : static_cast<double>(a.i);
  auto fres = [&](double v) {
    if (fl)
      r.f = v;
    else
      r.i = static_cast<int64_t>(v);
  };
  switch (op) {
  case UnaryOp::Neg:
    fl ? (void)(r.f = -a.f) : (void)(r.i = -a.i);
    break;
  case UnaryOp::Abs:
    fl ? (void)(r.f = std::fabs(a.f)) : (void)(r.i = a.i < 0 ? -a.i : a.i);
    break;
  case UnaryOp::Exp: fres(std::exp(x)); break;
  case UnaryOp::Log: fres(std::log(x)); break;
  case UnaryOp::Sqrt: fres(std::sqrt(x)); break;
  case UnaryOp::Tanh: fres(std::tanh(x)); break;
  case UnaryOp::Erf: fres(std::erf(x)); break;
  case UnaryOp::Sigmoid: fres(1.0 / (1.0 + std::exp(-x))); break;
  case UnaryOp::Floor: fres(std::floor(x)); break;
  case UnaryOp::Ceil: fres(std::ceil(x)); break;
  case UnaryOp::Round: fres(std::nearbyint(x)); break;
  case UnaryOp::Sin: fres(std::sin(x)); break;
  case UnaryOp::Cos: fres(std::cos(x)); break;
  case UnaryOp::Tan: fres(std::tan(x)); break;
  case UnaryOp::Asin: fres(std::asin(x)); break;
  case UnaryOp::Acos: fres(std::acos(x)); break;
  case UnaryOp::Atan: fres(std::atan(x)); break;
  case UnaryOp::Sinh: fres(std::sinh(x)); break;
  case UnaryOp::Cosh: fres(std::cosh(x)); break;
  case UnaryOp::Asinh: fres(std::asinh(x)); break;
  case UnaryOp::Acosh: fres(std::acosh(x)); break;
  case UnaryOp::Atanh: fres(std::atanh(x)); break;
  case UnaryOp::Not: r.i = !a.i; break;
  case UnaryOp::BitNot: r.i = ~a.i; break;
  case UnaryOp::Sign:
    fl ? (void)(r.f = (a.f > 0) - (a.f < 0)) : (void)(r.i = (a.i > 0) - (a.i < 0));
    break;
  case UnaryOp::Reciprocal: fres(1.0 / x); break;
  case UnaryOp::IsNaN: r.i = std::isnan(x); break;
  case UnaryOp::IsPosInf: r.i = std::isinf(x) && x > 0; break;
  case UnaryOp::IsNegInf: r.i = std::isinf(x) && x < 0; break;
  }
  return unaryIsPredicate(op) ? normalize(DType::Bool, r) : normalize(t, r);
}

Scalar evalBinary(BinaryOp op, DType t, Scalar a, Scalar b) {
  Scalar r;
  bool fl = isFloat(t);
  bool uns = t == DType::UInt64;
  double x = asDouble(t, a), y = asDouble(t, b);
  switch (op) {
  case BinaryOp::Add: fl ? (void)(r.f = x + y) : (void)(r.i = a.i + b.i); break;
  case BinaryOp::Sub: fl ? (void)(r.f = x - y) : (void)(r.i = a.i - b.i); break;
  case BinaryOp::Mul: fl ? (void)(r.f = x * y) : (void)(r.i = a.i * b.i); break;
  case BinaryOp::Div:
    if (fl)
      r.f = x / y;
    else if (b.i != 0)
      r.i = uns ? static_cast<int64_t>(static_cast<uint64_t>(a.i) / static_cast<uint64_t>(b.i))
                : a.i / b.i;
    break;
  case BinaryOp::Pow:
    if (fl)
      r.f = std::pow(x, y);
    else
      r.i = static_cast<int64_t>(std::pow(x, y));
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
      r.i = a.i % b.i;
    break;
  case BinaryOp::Mod:
    if (fl) {
      r.f = std::fmod(x, y);
      if (r.f != 0 && ((r.f < 0) != (y < 0)))
        r.f += y;
    } else if (b.i != 0) {
      r.i = a.i % b.i;
      if (r.i != 0 && ((r.i < 0) != (b.i < 0)))
        r.i += b.i;
    }
    break;
  case BinaryOp::And: r.i = a.i && b.i; break;
  case BinaryOp::Or: r.i = a.i || b.i; break;
  case BinaryOp::Xor: r.i = (a.i != 0) != (b.i != 0); break;
  case BinaryOp::Eq: r.i = fl ? x == y : a.i == b.i; break;
  case BinaryOp::Ne: r.i = fl ? x != y : a.i != b.i; break;
  case BinaryOp::Lt: r.i = (fl || uns) ? x < y : a.i < b.i; break;
  case BinaryOp::Le: r.i = (fl || uns) ? x <= y : a.i <= b.i; break;
  case BinaryOp::Gt: r.i = (fl || uns) ? x > y : a.i > b.i; break;
  case BinaryOp::Ge: r.i = (fl || uns) ? x >= y : a.i >= b.i; break;
  case BinaryOp::BitAnd: r.i = a.i & b.i; break;
  case BinaryOp::BitOr: r.i = a.i | b.i; break;
  case BinaryOp::BitXor: r.i = a.i ^ b.i; break;
  case BinaryOp::ShiftL:
    r.i = b.i >= 64 ? 0 : static_cast<int64_t>(static_cast<uint64_t>(a.i) << b.i);
    break;
  case BinaryOp::ShiftR:
    r.i = b.i >= 64 ? 0 : static_cast<int64_t>(static_cast<uint64_t>(a.i) >> b.i);
    break;
  }
  return binaryIsPredicate(op) ? normalize(DType::Bool, r) : normalize(t, r);
}

Scalar evalCast(DType from, DType to, Scalar a) {
  Scalar r;
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
    else if (to == DType::UInt64 && v >= 9.2233720368547758e18)
      r.i = static_cast<int64_t>(static_cast<uint64_t>(v));
    else
      r.i = static_cast<int64_t>(v);
    return normalize(to, r);
  }
  r.i = a.i;
  return normalize(to, r);
}

} // namespace kiln::loop
