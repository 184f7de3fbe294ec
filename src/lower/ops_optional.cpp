// ONNX optional values. Whether an optional holds a value is known at compile time: a
// present optional is its tensor or sequence itself, an empty one is in Lowerer::noneEnv
// (graph inputs declared absent with --optional NAME=absent, or Optional without input).
#include "lower/ops_common.h"

namespace kiln::lower {

namespace {

/// Passes input i (a tensor, a sequence or an empty optional) to output 0.
void forward(OpCtx &c, size_t i) {
  if (c.isNoneIn(i))
    c.outNone(0);
  else if (c.isSeqIn(i))
    c.outSeq(0, c.inSeq(i));
  else
    c.out(0, c.in(i));
}

void lowerOptional(OpCtx &c) {
  if (c.has(0))
    forward(c, 0);
  else
    c.outNone(0);
}

void lowerOptionalHasElement(OpCtx &c) {
  // An absent input (opset 18) is an empty optional too.
  bool has = c.has(0) && !c.isNoneIn(0);
  c.out(0, c.pointwise(
               DType::Bool, {},
               [has](const Index &) { return loop::constantInt(DType::Bool, has ? 1 : 0); }, true));
}

void lowerOptionalGetElement(OpCtx &c) {
  if (!c.has(0) || c.isNoneIn(0))
    fail("{}: the optional input is empty (known at compile time), so there is no element to "
         "get",
         c.node.describe());
  forward(c, 0);
}

} // namespace

void registerOptionalOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {{"Optional", 15, lowerOptional},
                     {"OptionalHasElement", 15, lowerOptionalHasElement},
                     {"OptionalGetElement", 15, lowerOptionalGetElement}});
}

} // namespace kiln::lower
