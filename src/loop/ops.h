// Scalar operator lists for loop-IR value expressions. Each list drives the enum, the
// C++ printer and the interpreter, so an op is added in one place.
#pragma once

namespace kiln::loop {

// X(Enum, C++ expression template over `a` (float math uses the compute type), is_predicate)
#define KILN_UNARY_OPS(X)                                                                          \
  X(Neg, "(-a)", 0)                                                                                \
  X(Abs, "kiln_abs(a)", 0)                                                                         \
  X(Exp, "std::exp(a)", 0)                                                                         \
  X(Log, "std::log(a)", 0)                                                                         \
  X(Sqrt, "std::sqrt(a)", 0)                                                                       \
  X(Tanh, "std::tanh(a)", 0)                                                                       \
  X(Erf, "std::erf(a)", 0)                                                                         \
  X(Sigmoid, "kiln_sigmoid(a)", 0)                                                                 \
  X(Floor, "std::floor(a)", 0)                                                                     \
  X(Ceil, "std::ceil(a)", 0)                                                                       \
  X(Round, "std::nearbyint(a)", 0)                                                                 \
  X(Sin, "std::sin(a)", 0)                                                                         \
  X(Cos, "std::cos(a)", 0)                                                                         \
  X(Tan, "std::tan(a)", 0)                                                                         \
  X(Asin, "std::asin(a)", 0)                                                                       \
  X(Acos, "std::acos(a)", 0)                                                                       \
  X(Atan, "std::atan(a)", 0)                                                                       \
  X(Sinh, "std::sinh(a)", 0)                                                                       \
  X(Cosh, "std::cosh(a)", 0)                                                                       \
  X(Asinh, "std::asinh(a)", 0)                                                                     \
  X(Acosh, "std::acosh(a)", 0)                                                                     \
  X(Atanh, "std::atanh(a)", 0)                                                                     \
  X(Not, "(!a)", 1)                                                                                \
  X(BitNot, "(~a)", 0)                                                                             \
  X(Sign, "kiln_sign(a)", 0)                                                                       \
  X(Reciprocal, "(1 / a)", 0)                                                                      \
  X(IsNaN, "std::isnan(a)", 1)                                                                     \
  X(IsPosInf, "(std::isinf(a) && a > 0)", 1)                                                       \
  X(IsNegInf, "(std::isinf(a) && a < 0)", 1)                                                       \
  X(Log10, "std::log10(a)", 0)

#define KILN_BINARY_OPS(X)                                                                         \
  X(Add, "(a + b)", 0)                                                                             \
  X(Sub, "(a - b)", 0)                                                                             \
  X(Mul, "(a * b)", 0)                                                                             \
  X(Div, "kiln_div(a, b)", 0)                                                                      \
  X(Pow, "kiln_pow(a, b)", 0)                                                                      \
  X(Max, "kiln_max(a, b)", 0)                                                                      \
  X(Min, "kiln_min(a, b)", 0)                                                                      \
  X(Fmod, "kiln_fmod(a, b)", 0)                                                                    \
  X(Mod, "kiln_mod(a, b)", 0)                                                                      \
  X(And, "(a && b)", 1)                                                                            \
  X(Or, "(a || b)", 1)                                                                             \
  X(Xor, "(a != b)", 1)                                                                            \
  X(Eq, "(a == b)", 1)                                                                             \
  X(Ne, "(a != b)", 1)                                                                             \
  X(Lt, "(a < b)", 1)                                                                              \
  X(Le, "(a <= b)", 1)                                                                             \
  X(Gt, "(a > b)", 1)                                                                              \
  X(Ge, "(a >= b)", 1)                                                                             \
  X(BitAnd, "(a & b)", 0)                                                                          \
  X(BitOr, "(a | b)", 0)                                                                           \
  X(BitXor, "(a ^ b)", 0)                                                                          \
  X(ShiftL, "kiln_shl(a, b)", 0)                                                                   \
  X(ShiftR, "kiln_shr(a, b)", 0)

enum class UnaryOp {
#define X(e, t, p) e,
  KILN_UNARY_OPS(X)
#undef X
};
enum class BinaryOp {
#define X(e, t, p) e,
  KILN_BINARY_OPS(X)
#undef X
};

const char *unaryName(UnaryOp op);
const char *binaryName(BinaryOp op);
const char *unaryTemplate(UnaryOp op);
const char *binaryTemplate(BinaryOp op);
bool unaryIsPredicate(UnaryOp op);
bool binaryIsPredicate(BinaryOp op);

} // namespace kiln::loop
