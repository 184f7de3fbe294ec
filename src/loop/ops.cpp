#include "loop/ops.h"

namespace kiln::loop {

#define U_NAME(e, p)                                                                               \
  case UnaryOp::e:                                                                                 \
    return #e;
#define U_PRED(e, p)                                                                               \
  case UnaryOp::e:                                                                                 \
    return p;
#define B_NAME(e, p)                                                                               \
  case BinaryOp::e:                                                                                \
    return #e;
#define B_PRED(e, p)                                                                               \
  case BinaryOp::e:                                                                                \
    return p;

const char *unaryName(UnaryOp op) {
  switch (op) { KILN_UNARY_OPS(U_NAME) }
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
bool binaryIsPredicate(BinaryOp op) {
  switch (op) { KILN_BINARY_OPS(B_PRED) }
  return false;
}

} // namespace kiln::loop
