#include "lower/ops_common.h"

#include <fmt/ranges.h>

#include <map>

namespace kiln::lower {

void registerDeformConvOps(std::vector<OpInfo> &r);  // ops_deform_conv.cpp
void registerResizeOps(std::vector<OpInfo> &r);      // ops_resize.cpp
void registerMatMulMultiOps(std::vector<OpInfo> &r); // ops_matmul_multi.cpp

const std::vector<OpInfo> &opRegistry() {
  static const std::vector<OpInfo> ops = [] {
    std::vector<OpInfo> r;
    registerElementwiseOps(r);
    registerShapeOps(r);
    registerReduceOps(r);
    registerNNOps(r);
    registerPoolOps(r);
    registerTensorOps(r);
    registerTensorValueOps(r);
    registerNormalizationOps(r);
    registerModelOps(r);
    registerRecurrentOps(r);
    registerResizeOps(r);
    registerQuantOps(r);
    registerScatterOps(r);
    registerAttentionOps(r);
    registerMatMulMultiOps(r);
    registerTransformerOps(r);
    registerImageOps(r);
    registerEinsumOps(r);
    registerTopKOps(r);
    registerSignalOps(r);
    registerSamplingOps(r);
    registerDeformConvOps(r);
    registerSelectOps(r);
    registerStringOps(r);
    registerMiscOps(r);
    registerSequenceOps(r);
    registerControlOps(r);
    registerScanOps(r);
    registerOptionalOps(r);
    return r;
  }();
  return ops;
}

const OpInfo *findOp(const std::string &op) {
  static const std::map<std::string, const OpInfo *> index = [] {
    std::map<std::string, const OpInfo *> m;
    for (const OpInfo &o : opRegistry())
      m[o.name] = &o;
    return m;
  }();
  auto it = index.find(op);
  return it == index.end() ? nullptr : it->second;
}

LTensor broadcastBinary(OpCtx &c, const LTensor &a, const LTensor &b, BinaryOp op) {
  requireSameDtype(c, a, b, "operands");
  if (a.dtype == DType::String && op != BinaryOp::Eq)
    fail("{}: {} on string tensors is not supported (of the binary ops, kiln compares strings "
         "only with Equal)",
         c.node.describe(), c.node.op);
  ir::Shape shape = broadcastShapes(a.shape, b.shape, c.node.describe());
  sym::Context *ctx = &c.ctx();
  DType out = loop::binaryIsPredicate(op) ? DType::Bool : a.dtype;
  return c.pointwise(out, shape, [=](const Index &idx) {
    return loop::binary(op, loadBroadcast(*ctx, a, shape, idx), loadBroadcast(*ctx, b, shape, idx));
  });
}

LTensor mapUnary(OpCtx &c, const LTensor &a, const std::function<VRef(VRef)> &f) {
  Loader inner = a.load;
  VRef probe = f(loop::constant(a.dtype, 0));
  return c.pointwise(probe->dtype, a.shape, [=](const Index &idx) { return f(inner(idx)); });
}

void requireFloat(OpCtx &c, const LTensor &t, const char *what) {
  if (!isFloat(t.dtype))
    fail("{}: {} of type {} is not supported (float types only)", c.node.describe(), what,
         dtypeName(t.dtype));
}

void requireSameDtype(OpCtx &c, const LTensor &a, const LTensor &b, const char *what) {
  if (a.dtype != b.dtype)
    fail("{}: {} have different element types ({} and {})", c.node.describe(), what,
         dtypeName(a.dtype), dtypeName(b.dtype));
}

void requirePositive(OpCtx &c, const std::vector<int64_t> &v, const char *what) {
  for (int64_t x : v)
    if (x < 1) fail("{}: {} must be positive, got {}", c.node.describe(), what, fmt::join(v, ", "));
}

void requireShape(OpCtx &c, const LTensor &t, const ir::Shape &want, const char *name) {
  const std::string shape = ir::shapeToString(want);
  if (t.rank() != static_cast<int>(want.size()))
    fail("{}: {} must have shape {}, got {}", c.node.describe(), name, shape,
         ir::shapeToString(t.shape));
  for (size_t d = 0; d < want.size(); ++d)
    c.guardEqual(t.shape[d], want[d], fmt::format("{} dim {} must be {}", name, d, shape));
}

std::optional<VRef> scalarInput(OpCtx &c, size_t i, DType t) {
  if (!c.has(i)) return std::nullopt;
  LTensor s = c.in(i);
  for (const sym::Expr &d : s.shape)
    if (d.isConst(0)) // reading its first element would read past the end
      fail("{}: input {} must hold one value, got shape {}", c.node.describe(), i,
           ir::shapeToString(s.shape));
  Index zeros(s.rank(), c.ctx().constant(0));
  return loop::cast(s.load(zeros), t);
}

VRef requireScalarInput(OpCtx &c, size_t i, DType t) {
  std::optional<VRef> v = scalarInput(c, i, t);
  if (!v) fail("{}: input {} is required here", c.node.describe(), i);
  return *v;
}

std::vector<sym::Expr> constants(sym::Context &ctx, const std::vector<int64_t> &v) {
  std::vector<sym::Expr> r;
  for (int64_t x : v)
    r.push_back(ctx.constant(x));
  return r;
}

} // namespace kiln::lower
