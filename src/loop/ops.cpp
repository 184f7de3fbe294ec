#include "loop/ops.h"

namespace kiln::loop {

#define U_NAME(e, t, p)                                                                            \
  case UnaryOp::e:                                                                                 \
    return #e;
#define U_TPL(e, t, p)                                                                             \
  case UnaryOp::e:                                                                                 \
    return t;
#define U_PRED(e, t, p)                                                                            \
  case UnaryOp::e:                                                                                 \
    return p;
#define B_NAME(e, t, p)                                                                            \
  case BinaryOp::e:                                                                                \
    return #e;
#define B_TPL(e, t, p)                                                                             \
  case BinaryOp::e:                                                                                \
    return t;
#define B_PRED(e, t, p)                                                                            \
  case BinaryOp::e:                                                                                \
    return p;

const char *unaryName(UnaryOp op) {
  switch (op) { KILN_UNARY_OPS(U_NAME) }
  return "?";
}
const char *unaryTemplate(UnaryOp op) {
  switch (op) { KILN_UNARY_OPS(U_TPL) }
  return "?";
}
bool unaryIsPredicate(UnaryOp op) {
  switch (op) { KILN_UNARY_OPS(U_PRED) }
  return false;
}
const char *binaryName(BinaryOp op) {
  switch (op) { KILN_BINARY_OPS(B_NAME) }
  return "?";
}
const char *binaryTemplate(BinaryOp op) {
  switch (op) { KILN_BINARY_OPS(B_TPL) }
  return "?";
}
bool binaryIsPredicate(BinaryOp op) {
  switch (op) { KILN_BINARY_OPS(B_PRED) }
  return false;
}

} // namespace kiln::loop
