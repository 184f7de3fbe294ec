// C/C++ text of each scalar op for the C-like printers (CPU C++ and CUDA C++ share it: the
// preludes give kiln_* helpers on both, and nvcc provides the std:: math in device code).
#include "codegen/common/c_printer.h"

namespace kiln::codegen {

using loop::BinaryOp;
using loop::UnaryOp;

const char *unaryText(UnaryOp op) {
  switch (op) {
  case UnaryOp::Neg:
    return "(-a)";
  case UnaryOp::Abs:
    return "kiln_abs(a)";
  case UnaryOp::Exp:
    return "std::exp(a)";
  case UnaryOp::Log:
    return "std::log(a)";
  case UnaryOp::Sqrt:
    return "std::sqrt(a)";
  case UnaryOp::Tanh:
    return "std::tanh(a)";
  case UnaryOp::Erf:
    return "std::erf(a)";
  case UnaryOp::Sigmoid:
    return "kiln_sigmoid(a)";
  case UnaryOp::Floor:
    return "std::floor(a)";
  case UnaryOp::Ceil:
    return "std::ceil(a)";
  case UnaryOp::Round:
    return "std::nearbyint(a)";
  case UnaryOp::Sin:
    return "std::sin(a)";
  case UnaryOp::Cos:
    return "std::cos(a)";
  case UnaryOp::Tan:
    return "std::tan(a)";
  case UnaryOp::Asin:
    return "std::asin(a)";
  case UnaryOp::Acos:
    return "std::acos(a)";
  case UnaryOp::Atan:
    return "std::atan(a)";
  case UnaryOp::Sinh:
    return "std::sinh(a)";
  case UnaryOp::Cosh:
    return "std::cosh(a)";
  case UnaryOp::Asinh:
    return "std::asinh(a)";
  case UnaryOp::Acosh:
    return "std::acosh(a)";
  case UnaryOp::Atanh:
    return "std::atanh(a)";
  case UnaryOp::Not:
    return "(!a)";
  case UnaryOp::BitNot:
    return "(~a)";
  case UnaryOp::Sign:
    return "kiln_sign(a)";
  case UnaryOp::Reciprocal:
    return "(1 / a)";
  case UnaryOp::IsNaN:
    return "std::isnan(a)";
  case UnaryOp::IsPosInf:
    return "(std::isinf(a) && a > 0)";
  case UnaryOp::IsNegInf:
    return "(std::isinf(a) && a < 0)";
  case UnaryOp::Log10:
    return "std::log10(a)";
  }
  return "?";
}

const char *binaryText(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add:
    return "(a + b)";
  case BinaryOp::Sub:
    return "(a - b)";
  case BinaryOp::Mul:
    return "(a * b)";
  case BinaryOp::Div:
    return "kiln_div(a, b)";
  case BinaryOp::Pow:
    return "kiln_pow(a, b)";
  case BinaryOp::Max:
    return "kiln_max(a, b)";
  case BinaryOp::Min:
    return "kiln_min(a, b)";
  case BinaryOp::Fmod:
    return "kiln_fmod(a, b)";
  case BinaryOp::Mod:
    return "kiln_mod(a, b)";
  case BinaryOp::And:
    return "(a && b)";
  case BinaryOp::Or:
    return "(a || b)";
  case BinaryOp::Xor:
    return "(a != b)";
  case BinaryOp::Eq:
    return "(a == b)";
  case BinaryOp::Ne:
    return "(a != b)";
  case BinaryOp::Lt:
    return "(a < b)";
  case BinaryOp::Le:
    return "(a <= b)";
  case BinaryOp::Gt:
    return "(a > b)";
  case BinaryOp::Ge:
    return "(a >= b)";
  case BinaryOp::BitAnd:
    return "(a & b)";
  case BinaryOp::BitOr:
    return "(a | b)";
  case BinaryOp::BitXor:
    return "(a ^ b)";
  case BinaryOp::ShiftL:
    return "kiln_shl(a, b)";
  case BinaryOp::ShiftR:
    return "kiln_shr(a, b)";
  }
  return "?";
}

} // namespace kiln::codegen
