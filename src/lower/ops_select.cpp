// Ops whose output size depends on the data: NonZero, Compress, Unique and
// NonMaxSuppression. A shim computes the selection and writes its size into a late symbol
// (OpCtx::lateSymbol); buffers shaped by it are sized for an upper bound, and the kernels
// that follow (and the runtime, for outputs) use the actual value.
#include "lower/ops_common.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;

ExternArg lit(int64_t v) {
  return externInt(v);
}
ExternArg buf(loop::Buffer *b) {
  return externArg(ExternArg::Kind::Buffer, b);
}
ExternArg symbolOut(sym::Expr s) {
  ExternArg a = externArg(ExternArg::Kind::SymbolOut);
  a.dims = {s};
  return a;
}

/// A realized buffer of t converted to `type` (optional inputs: nullptr when absent).
loop::Buffer *realizedAs(OpCtx &c, size_t input, DType type) {
  if (!c.has(input)) return nullptr;
  LTensor t = c.in(input);
  if (t.dtype != type) t = mapUnary(c, t, [type](VRef v) { return loop::cast(v, type); });
  return c.realize(t).buffer;
}

/// Row-major multi-indices of the nonzero elements of t: int64 [rank, count].
LTensor nonZeroIndices(OpCtx &c, const LTensor &t, const char *tag) {
  LTensor mask = c.realize(mapUnary(c, t, [&](VRef v) {
    return loop::cast(loop::binary(BinaryOp::Ne, v, loop::constant(t.dtype, 0)), DType::UInt8);
  }));
  sym::Expr n = product(c.ctx(), t.shape, 0, t.shape.size());
  sym::Expr count = c.lateSymbol(tag, n);
  loop::Buffer *out = c.prog().newBuffer(DType::Int64, {c.ctx().constant(t.rank()), count},
                                         loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::NonZero);
  k->ext.inputs = {mask.buffer};
  k->ext.outputs = {out};
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 buf(mask.buffer),
                 externDims(t.shape),
                 lit(t.rank()),
                 buf(out),
                 symbolOut(count)};
  return fromBuffer(c.ctx(), out);
}

void lowerNonZero(OpCtx &c) {
  c.out(0, nonZeroIndices(c, c.in(0), "count"));
}

void lowerCompress(OpCtx &c) {
  LTensor x = c.in(0), cond = c.in(1);
  if (cond.rank() != 1) fail("{}: condition must be 1-D", c.node.describe());
  int axis;
  if (c.node.hasAttr("axis")) {
    axis = c.normAxis(c.node.attrInt("axis", 0), x.rank());
  } else {
    x = reshapeView(c.ctx(), x, {product(c.ctx(), x.shape, 0, x.shape.size())});
    axis = 0;
  }
  sym::Expr dim = x.shape[axis];
  c.guardEqual(sym::min(cond.shape[0], dim), cond.shape[0],
               "the condition must not be longer than the selected axis");
  LTensor picked = nonZeroIndices(c, cond, "count");
  ir::Shape shape = x.shape;
  shape[axis] = picked.shape[1];
  Lowerer *low = &c.lowerer();
  sym::Expr zero = c.ctx().constant(0);
  c.out(0, c.pointwise(x.dtype, shape, [=](const Index &i) {
    Index src = i;
    sym::Expr var = low->newVar("g", dim);
    src[axis] = var;
    VRef at = picked.load({zero, i[axis]});
    return loop::bindIndirect(x.load(src), var, at);
  }));
}

void lowerUnique(OpCtx &c) {
  LTensor x = c.in(0);
  int et = shimElemType(x.dtype);
  if (et < 0 || x.dtype == DType::Float16 || x.dtype == DType::BFloat16)
    c.unsupported(fmt::format("Unique on {}", dtypeName(x.dtype)));
  sym::Context &ctx = c.ctx();
  loop::Buffer *xb = c.realize(x).buffer;
  ir::Shape dims, yShape;
  sym::Expr count;
  if (c.node.hasAttr("axis")) {
    int axis = c.normAxis(c.node.attrInt("axis", 0), x.rank());
    dims = {product(ctx, x.shape, 0, axis), x.shape[axis],
            product(ctx, x.shape, axis + 1, x.shape.size())};
    count = c.lateSymbol("count", x.shape[axis]);
    yShape = x.shape;
    yShape[axis] = count;
  } else {
    sym::Expr n = product(ctx, x.shape, 0, x.shape.size());
    dims = {ctx.constant(1), n, ctx.constant(1)};
    count = c.lateSymbol("count", n);
    yShape = {count};
  }
  auto newBuf = [&](DType t, ir::Shape s) {
    return c.prog().newBuffer(t, std::move(s), loop::BufferKind::Intermediate, "");
  };
  loop::Buffer *y = newBuf(x.dtype, yShape), *first = newBuf(DType::Int64, {count}),
               *inverse = newBuf(DType::Int64, {dims[1]}), *counts = newBuf(DType::Int64, {count});
  loop::Kernel *k = c.externKernel(loop::ExternKind::Unique);
  k->ext.inputs = {xb};
  k->ext.outputs = {y, first, inverse, counts};
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 lit(et),
                 lit(dtypeSize(x.dtype)),
                 buf(xb),
                 externDims(dims),
                 lit(c.node.attrInt("sorted", 1)),
                 buf(y),
                 buf(first),
                 buf(inverse),
                 buf(counts),
                 symbolOut(count)};
  c.out(0, fromBuffer(ctx, y));
  c.out(1, fromBuffer(ctx, first));
  c.out(2, fromBuffer(ctx, inverse));
  c.out(3, fromBuffer(ctx, counts));
}

void lowerNonMaxSuppression(OpCtx &c) {
  LTensor boxes = c.in(0), scores = c.in(1);
  if (boxes.rank() != 3 || scores.rank() != 3)
    fail("{}: boxes and scores must be 3-D", c.node.describe());
  if (boxes.dtype != DType::Float32 || scores.dtype != DType::Float32)
    c.unsupported("NonMaxSuppression on non-float32 boxes or scores");
  sym::Context &ctx = c.ctx();
  sym::Expr B = boxes.shape[0], N = boxes.shape[1], C = scores.shape[1];
  c.guardEqual(scores.shape[0], B, "scores and boxes must have the same batch size");
  c.guardEqual(scores.shape[2], N, "scores and boxes must have the same number of boxes");
  c.guardEqual(boxes.shape[2], ctx.constant(4), "boxes must have 4 coordinates");
  loop::Buffer *bb = c.realize(boxes).buffer, *sb = c.realize(scores).buffer;
  loop::Buffer *maxOut = realizedAs(c, 2, DType::Int64), *iou = realizedAs(c, 3, DType::Float32),
               *minScore = realizedAs(c, 4, DType::Float32);
  sym::Expr count = c.lateSymbol("count", B * C * N);
  loop::Buffer *out = c.prog().newBuffer(DType::Int64, {count, ctx.constant(3)},
                                         loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::NonMaxSuppression);
  k->ext.inputs = {bb, sb};
  for (loop::Buffer *b : {maxOut, iou, minScore})
    if (b) k->ext.inputs.push_back(b);
  k->ext.outputs = {out};
  auto optional = [](loop::Buffer *b) { return b ? buf(b) : externArg(ExternArg::Kind::Null); };
  k->ext.args = {externArg(ExternArg::Kind::Site),
                 buf(bb),
                 buf(sb),
                 externDims({B, C, N}),
                 optional(maxOut),
                 optional(iou),
                 optional(minScore),
                 lit(c.node.attrInt("center_point_box", 0)),
                 buf(out),
                 symbolOut(count)};
  c.out(0, fromBuffer(ctx, out));
}

} // namespace

void registerSelectOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"NonZero", 9, lowerNonZero},
                        {"Compress", 9, lowerCompress},
                        {"Unique", 11, lowerUnique},
                        {"NonMaxSuppression", 10, lowerNonMaxSuppression},
                    });
}

} // namespace kiln::lower
