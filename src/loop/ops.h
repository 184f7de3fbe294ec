// Scalar operator lists for loop-IR value expressions. Each list drives the enum, the
// C++ printer and the interpreter, so an op is added in one place.
#pragma once

namespace kiln::loop {

// X(Enum, is_predicate). Printers map each op to target text (codegen/common/c_ops.cpp);
// the IR itself holds no source text.
#define KILN_UNARY_OPS(X)                                                                          \
  X(Neg, 0)                                                                                        \
  X(Abs, 0)                                                                                        \
  X(Exp, 0)                                                                                        \
  X(Log, 0)                                                                                        \
  X(Sqrt, 0)                                                                                       \
  X(Tanh, 0)                                                                                       \
  X(Erf, 0)                                                                                        \
  X(Sigmoid, 0)                                                                                    \
  X(Floor, 0)                                                                                      \
  X(Ceil, 0)                                                                                       \
  X(Round, 0)                                                                                      \
  X(Sin, 0)                                                                                        \
  X(Cos, 0)                                                                                        \
  X(Tan, 0)                                                                                        \
  X(Asin, 0)                                                                                       \
  X(Acos, 0)                                                                                       \
  X(Atan, 0)                                                                                       \
  X(Sinh, 0)                                                                                       \
  X(Cosh, 0)                                                                                       \
  X(Asinh, 0)                                                                                      \
  X(Acosh, 0)                                                                                      \
  X(Atanh, 0)                                                                                      \
  X(Not, 1)                                                                                        \
  X(BitNot, 0)                                                                                     \
  X(Sign, 0)                                                                                       \
  X(Reciprocal, 0)                                                                                 \
  X(IsNaN, 1)                                                                                      \
  X(IsPosInf, 1)                                                                                   \
  X(IsNegInf, 1)                                                                                   \
  X(Log10, 0)

#define KILN_BINARY_OPS(X)                                                                         \
  X(Add, 0)                                                                                        \
  X(Sub, 0)                                                                                        \
  X(Mul, 0)                                                                                        \
  X(Div, 0)                                                                                        \
  X(Pow, 0)                                                                                        \
  X(Max, 0)                                                                                        \
  X(Min, 0)                                                                                        \
  X(Fmod, 0)                                                                                       \
  X(Mod, 0)                                                                                        \
  X(And, 1)                                                                                        \
  X(Or, 1)                                                                                         \
  X(Xor, 1)                                                                                        \
  X(Eq, 1)                                                                                         \
  X(Ne, 1)                                                                                         \
  X(Lt, 1)                                                                                         \
  X(Le, 1)                                                                                         \
  X(Gt, 1)                                                                                         \
  X(Ge, 1)                                                                                         \
  X(BitAnd, 0)                                                                                     \
  X(BitOr, 0)                                                                                      \
  X(BitXor, 0)                                                                                     \
  X(ShiftL, 0)                                                                                     \
  X(ShiftR, 0)

enum class UnaryOp {
#define X(e, p) e,
  KILN_UNARY_OPS(X)
#undef X
};
enum class BinaryOp {
#define X(e, p) e,
  KILN_BINARY_OPS(X)
#undef X
};

const char *unaryName(UnaryOp op);
const char *binaryName(BinaryOp op);
bool unaryIsPredicate(UnaryOp op);
bool binaryIsPredicate(BinaryOp op);

} // namespace kiln::loop
