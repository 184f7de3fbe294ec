// Shape and data-movement ops. Views (reshape, transpose, slice, squeeze, expand)
// only remap indices; nothing is copied unless a consumer needs a buffer.
#include "lower/ops_common.h"
#include "lower/runtime_shape.h"

namespace kiln::lower {

namespace {

std::vector<int64_t> axesFrom(OpCtx &c, size_t inputIdx, const char *attr) {
  if (c.node.hasAttr(attr)) return c.node.attrInts(attr);
  if (c.has(inputIdx)) return c.requireIntsIn(inputIdx, attr);
  return {};
}

void lowerShape(OpCtx &c) {
  LTensor x = c.in(0);
  int rank = x.rank();
  int64_t start = c.node.attrInt("start", 0), end = c.node.attrInt("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, 0, rank);
  std::vector<sym::Expr> dims(x.shape.begin() + start, x.shape.begin() + std::max(start, end));
  c.out(0, symbolicVector(c.ctx(), DType::Int64, {c.ctx().constant((int64_t)dims.size())}, dims));
}

void lowerSize(OpCtx &c) {
  LTensor x = c.in(0);
  c.out(0,
        symbolicVector(c.ctx(), DType::Int64, {}, {product(c.ctx(), x.shape, 0, x.shape.size())}));
}

/// Reshape to a target known only at run time: 0 (copy the input dim unless allowzero) and
/// -1 (infer) are resolved by a symbol kernel before the run (a target from input data) or by
/// a value kernel during it (a target the model computes).
ir::Shape runtimeReshapeTarget(OpCtx &c, const LTensor &x, bool allowZero) {
  LTensor req = c.in(1);
  if (req.rank() != 1)
    fail("{}: the target shape must be a 1-D tensor, got rank {}", c.node.describe(), req.rank());
  int64_t n = c.requireStatic(req.shape[0], "the length of the target shape");
  // The resolution below is quadratic in the rank; numpy's limit is a generous bound.
  constexpr int64_t kMaxTargetRank = 64;
  if (n > kMaxTargetRank)
    fail("{}: the target shape has {} dims; kiln reshapes to at most {} dims", c.node.describe(), n,
         kMaxTargetRank);
  sym::Context &ctx = c.ctx();
  auto I = [](int64_t v) { return loop::constantInt(DType::Int64, v); };
  std::vector<VRef> raw, dim;
  for (int64_t k = 0; k < n; ++k) {
    VRef s = loop::cast(req.load({ctx.constant(k)}), DType::Int64);
    raw.push_back(s);
    VRef copied = k < x.rank() ? loop::symInt(x.shape[k]) : I(-2); // -2: invalid, caught below
    dim.push_back(allowZero ? s : loop::select(loop::binary(BinaryOp::Eq, s, I(0)), copied, s));
  }
  VRef total = loop::symInt(product(ctx, x.shape, 0, x.shape.size()));
  std::vector<VRef> resolved;
  for (int64_t k = 0; k < n; ++k) {
    VRef others = I(1);
    for (int64_t j = 0; j < n; ++j)
      if (j != k)
        others =
            loop::binary(BinaryOp::Mul, others,
                         loop::select(loop::binary(BinaryOp::Eq, raw[j], I(-1)), I(1), dim[j]));
    VRef inferred = loop::select(loop::binary(BinaryOp::Eq, others, I(0)), I(0),
                                 loop::binary(BinaryOp::Div, total, others));
    resolved.push_back(loop::select(loop::binary(BinaryOp::Eq, raw[k], I(-1)), inferred, dim[k]));
  }
  // Dims the model computes: with the element count kept, each is at most the count over
  // the product of the dims known exactly (those the run cannot change).
  sym::Expr exact = ctx.constant(1);
  for (const VRef &v : resolved)
    if (std::optional<sym::Expr> e = loop::asSym(v, ctx)) exact = exact * *e;
  sym::Expr limit =
      sym::floorDiv(product(ctx, x.shape, 0, x.shape.size()), sym::max(exact, ctx.constant(1)));
  return runtimeShape(c, resolved, "shape", {limit});
}

void lowerReshape(OpCtx &c) {
  LTensor x = c.in(0);
  bool allowZero = c.node.attrInt("allowzero", 0) != 0;
  sym::Expr total = product(c.ctx(), x.shape, 0, x.shape.size());
  std::vector<sym::Expr> req;
  if (c.node.opset < 5) {
    req = constants(c.ctx(), c.node.attrInts("shape"));
  } else if (auto known = c.symIn(1)) {
    req = *known;
  } else {
    ir::Shape shape = runtimeReshapeTarget(c, x, allowZero);
    c.guardEqual(product(c.ctx(), shape, 0, shape.size()), total,
                 "the target shape must keep the element count");
    c.out(0, reshapeView(c.ctx(), x, shape));
    return;
  }
  sym::Expr known = c.ctx().constant(1);
  int inferred = -1;
  ir::Shape shape(req.size());
  for (size_t i = 0; i < req.size(); ++i) {
    if (req[i].isConst(-1)) {
      if (inferred >= 0) fail("{}: more than one -1 in the target shape", c.node.describe());
      inferred = static_cast<int>(i);
      continue;
    }
    if (req[i].isConst(0) && !allowZero) {
      if (i >= x.shape.size())
        fail("{}: shape[{}] = 0 copies a dim the input (rank {}) lacks", c.node.describe(), i,
             x.rank());
      shape[i] = x.shape[i];
    } else {
      shape[i] = req[i];
    }
    known = known * shape[i];
  }
  if (inferred >= 0) shape[inferred] = sym::floorDiv(total, known);
  if (inferred < 0 && !sym::provablyEqual(known, total) && known.isConst() && total.isConst())
    fail("{}: cannot reshape {} ({} elements) to {} ({} elements)", c.node.describe(),
         ir::shapeToString(x.shape), total->value, ir::shapeToString(shape), known->value);
  if (inferred < 0) c.guardEqual(known, total, "the target shape must keep the element count");
  c.out(0, reshapeView(c.ctx(), x, shape));
}

void lowerFlatten(OpCtx &c) {
  LTensor x = c.in(0);
  int64_t a = c.node.attrInt("axis", 1);
  if (a < -x.rank() || a > x.rank())
    fail("{}: axis {} is out of range for rank {}", c.node.describe(), a, x.rank());
  int axis = static_cast<int>(a < 0 ? a + x.rank() : a);
  ir::Shape shape{product(c.ctx(), x.shape, 0, axis),
                  product(c.ctx(), x.shape, axis, x.shape.size())};
  c.out(0, reshapeView(c.ctx(), x, shape));
}

void lowerTranspose(OpCtx &c) {
  LTensor x = c.in(0);
  std::vector<int64_t> perm = c.node.attrInts("perm");
  if (perm.empty())
    for (int d = x.rank() - 1; d >= 0; --d)
      perm.push_back(d);
  if ((int)perm.size() != x.rank())
    fail("{}: perm has {} entries for rank {}", c.node.describe(), perm.size(), x.rank());
  ir::Shape shape;
  std::vector<bool> seen(x.rank(), false);
  for (int64_t p : perm) {
    int d = c.normAxis(p, x.rank());
    if (seen[d]) fail("{}: perm names axis {} twice", c.node.describe(), d);
    seen[d] = true;
    shape.push_back(x.shape.at(d));
  }
  Loader inner = x.load;
  int rank = x.rank();
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 Index src(rank);
                 for (int d = 0; d < rank; ++d)
                   src[perm[d] < 0 ? perm[d] + rank : perm[d]] = i[d];
                 return inner(src);
               },
               x.cheap));
}

/// Squeeze/Unsqueeze with axes read at run time: the output is the same data with dims
/// computed by symbol kernels (a reshape view; a guard checks the element count).
bool runtimeAxesReshape(OpCtx &c, const LTensor &x, bool unsqueeze) {
  if (c.node.opset < 13 || !c.has(1) || c.symIn(1)) return false;
  LTensor a = c.in(1);
  int64_t n = a.rank() == 0 ? 1 : c.requireStatic(a.shape[0], "the number of axes");
  if (n == 0) return false;
  int outRank = unsqueeze ? x.rank() + static_cast<int>(n) : x.rank() - static_cast<int>(n);
  if (outRank < 0) fail("{}: {} axes for rank {}", c.node.describe(), n, x.rank());
  ir::Shape shape;
  if (unsqueeze) {
    // Output dim j is 1 where flagged, else input dim (j - flagged dims before j).
    std::vector<sym::Expr> flags = runtimeAxisFlags(c, 1, outRank);
    sym::Expr before = c.ctx().constant(0);
    std::vector<VRef> dims;
    for (int j = 0; j < outRank; ++j) {
      VRef from = pickDim(x.shape, loop::symInt(c.ctx().constant(j) - before));
      dims.push_back(loop::select(
          loop::binary(BinaryOp::Eq, loop::symInt(flags[j]), loop::constantInt(DType::Int64, 1)),
          loop::constantInt(DType::Int64, 1), from));
      before = before + flags[j];
    }
    shape = runtimeShape(c, dims, "out_dim");
  } else {
    std::vector<sym::Expr> flags = runtimeAxisFlags(c, 1, x.rank());
    for (int d = 0; d < x.rank(); ++d)
      c.guardEqual(flags[d] * (x.shape[d] - 1), c.ctx().constant(0),
                   fmt::format("squeezed dim {} must have size 1", d));
    shape = keptDims(c, x.shape, flags, outRank, "out_dim");
  }
  c.guardEqual(product(c.ctx(), shape, 0, shape.size()),
               product(c.ctx(), x.shape, 0, x.shape.size()),
               "the output must keep the element count");
  c.out(0, reshapeView(c.ctx(), x, shape));
  return true;
}

void lowerSqueeze(OpCtx &c) {
  LTensor x = c.in(0);
  if (runtimeAxesReshape(c, x, false)) return;
  std::vector<int64_t> axes = axesFrom(c, 1, "axes");
  std::vector<bool> drop(x.rank(), false);
  if (axes.empty()) {
    for (int d = 0; d < x.rank(); ++d)
      drop[d] = x.shape[d].isConst(1);
  }
  for (int64_t a : axes) {
    int d = c.normAxis(a, x.rank());
    if (x.shape[d].isConst() && !x.shape[d].isConst(1))
      fail("{}: cannot squeeze axis {} of size {}", c.node.describe(), d, x.shape[d]->value);
    drop[d] = true;
  }
  ir::Shape shape;
  for (int d = 0; d < x.rank(); ++d)
    if (!drop[d]) shape.push_back(x.shape[d]);
  Loader inner = x.load;
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 Index src;
                 size_t k = 0;
                 for (size_t d = 0; d < drop.size(); ++d)
                   src.push_back(drop[d] ? ctx->constant(0) : i[k++]);
                 return inner(src);
               },
               x.cheap));
}

void lowerUnsqueeze(OpCtx &c) {
  LTensor x = c.in(0);
  if (runtimeAxesReshape(c, x, true)) return;
  std::vector<int64_t> axes = axesFrom(c, 1, "axes");
  int outRank = x.rank() + static_cast<int>(axes.size());
  std::vector<bool> added(outRank, false);
  for (int64_t a : axes) {
    int d = c.normAxis(a, outRank);
    if (added[d]) fail("{}: axis {} repeated", c.node.describe(), a);
    added[d] = true;
  }
  ir::Shape shape;
  size_t k = 0;
  for (int d = 0; d < outRank; ++d)
    shape.push_back(added[d] ? c.ctx().constant(1) : x.shape[k++]);
  Loader inner = x.load;
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 Index src;
                 for (int d = 0; d < outRank; ++d)
                   if (!added[d]) src.push_back(i[d]);
                 return inner(src);
               },
               x.cheap));
}

} // namespace

LTensor concatAlong(OpCtx &c, const std::vector<LTensor> &ins, int axis, DType t) {
  int rank = ins.at(0).rank();
  std::vector<LTensor> parts;
  std::vector<sym::Expr> offsets;
  sym::Expr total = c.ctx().constant(0);
  ir::Shape shape = ins[0].shape;
  for (const LTensor &p : ins) {
    if (p.rank() != rank)
      fail("{}: inputs have ranks {} and {}", c.node.describe(), rank, p.rank());
    for (int d = 0; d < rank; ++d)
      if (d != axis)
        c.guardEqual(p.shape[d], shape[d], fmt::format("the inputs differ in dim {}", d));
    if (p.shape[axis].isConst(0)) continue;
    parts.push_back(p);
    offsets.push_back(total);
    total = total + p.shape[axis];
  }
  shape[axis] = total;
  if (parts.empty())
    return c.pointwise(t, shape, [=](const Index &) { return loop::constant(t, 0); });
  return c.pointwise(t, shape, [=](const Index &i) {
    // Select among parts by the axis coordinate; the last part is the default.
    VRef result;
    for (size_t p = parts.size(); p-- > 0;) {
      Index src = i;
      sym::Expr local = i[axis] - offsets[p];
      // Clamp so that an unselected branch never reads out of bounds.
      src[axis] = sym::max(sym::min(local, parts[p].shape[axis] - 1), local.ctx().constant(0));
      VRef v = parts[p].load(src);
      if (!result) {
        result = v;
        continue;
      }
      VRef inPart = loop::binary(BinaryOp::Lt, loop::symInt(i[axis]),
                                 loop::symInt(offsets[p] + parts[p].shape[axis]));
      result = loop::select(inPart, v, result);
    }
    return result;
  });
}

namespace {

void lowerConcat(OpCtx &c) {
  std::vector<LTensor> ins;
  for (size_t i = 0; i < c.numInputs(); ++i)
    if (c.has(i)) ins.push_back(c.in(i));
  if (ins.empty()) fail("{}: no inputs", c.node.describe());
  for (const LTensor &t : ins)
    requireSameDtype(c, ins[0], t, "inputs");
  int axis = c.normAxis(c.node.attrInt("axis", 0), ins[0].rank());
  c.out(0, concatAlong(c, ins, axis, ins[0].dtype));
}

} // namespace

void registerShapeOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Shape", 1, lowerShape},
                        {"Size", 1, lowerSize},
                        {"Reshape", 1, lowerReshape},
                        {"Flatten", 1, lowerFlatten},
                        {"Transpose", 1, lowerTranspose},
                        {"Squeeze", 1, lowerSqueeze},
                        {"Unsqueeze", 1, lowerUnsqueeze},
                        {"Concat", 1, lowerConcat},
                    });
  registerSliceOps(r);
}

} // namespace kiln::lower
