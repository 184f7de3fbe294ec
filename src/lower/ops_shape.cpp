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
  for (int64_t p : perm)
    shape.push_back(x.shape.at(c.normAxis(p, x.rank())));
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
  int axis = c.normAxis(c.node.attrInt("axis", 0), ins[0].rank());
  c.out(0, concatAlong(c, ins, axis, ins[0].dtype));
}

sym::Expr clampIndex(sym::Expr v, sym::Expr lo, sym::Expr hi) {
  return sym::max(sym::min(v, hi), lo);
}

/// Slice whose starts/ends/axes/steps are read at run time: begin, step and length of
/// every dim become run-time symbols (ONNX clamping rules, evaluated by a symbol kernel).
void lowerRuntimeSlice(OpCtx &c, const LTensor &x) {
  sym::Context &ctx = c.ctx();
  int rank = x.rank();
  LTensor starts = c.in(1);
  if (starts.rank() != 1)
    fail("{}: starts must be a 1-D tensor, got rank {}", c.node.describe(), starts.rank());
  int64_t n = c.requireStatic(starts.shape[0], "the number of slice starts");
  auto I = [](int64_t v) { return loop::constantInt(DType::Int64, v); };
  auto bin = [](BinaryOp op, VRef a, VRef b) { return loop::binary(op, a, b); };
  auto elem = [&](size_t input, int64_t k, int64_t dflt) {
    if (!c.has(input)) return I(dflt);
    return loop::cast(c.in(input).load({ctx.constant(k)}), DType::Int64);
  };
  std::vector<VRef> vals; // per dim: begin, step, length
  std::vector<sym::Expr> limits;
  for (int d = 0; d < rank; ++d) {
    VRef st = I(0), en = I(INT64_MAX), sp = I(1);
    for (int64_t k = 0; k < n; ++k) {
      VRef a = elem(3, k, k);
      a = loop::select(bin(BinaryOp::Lt, a, I(0)), bin(BinaryOp::Add, a, I(rank)), a);
      VRef hit = bin(BinaryOp::Eq, a, I(d));
      st = loop::select(hit, elem(1, k, 0), st);
      en = loop::select(hit, elem(2, k, 0), en);
      sp = loop::select(hit, elem(4, k, 1), sp);
    }
    VRef dim = loop::symInt(x.shape[d]);
    auto wrap = [&](VRef v) {
      return loop::select(bin(BinaryOp::Lt, v, I(0)), bin(BinaryOp::Add, v, dim), v);
    };
    auto clamp = [&](VRef v, VRef lo, VRef hi) {
      return bin(BinaryOp::Max, bin(BinaryOp::Min, v, hi), lo);
    };
    VRef pos = bin(BinaryOp::Gt, sp, I(0));
    VRef dimLess = bin(BinaryOp::Sub, dim, I(1));
    VRef s = loop::select(pos, clamp(wrap(st), I(0), dim), clamp(wrap(st), I(-1), dimLess));
    VRef e = loop::select(pos, clamp(wrap(en), I(0), dim), clamp(wrap(en), I(-1), dimLess));
    VRef absStep = bin(BinaryOp::Max, sp, bin(BinaryOp::Sub, I(0), sp));
    VRef span = loop::select(pos, bin(BinaryOp::Sub, e, s), bin(BinaryOp::Sub, s, e));
    VRef len = bin(
        BinaryOp::Max, I(0),
        bin(BinaryOp::Div, bin(BinaryOp::Add, span, bin(BinaryOp::Sub, absStep, I(1))), absStep));
    vals.insert(vals.end(), {s, sp, len});
    // Computed by the model: start in [-1, dim], length at most dim.
    limits.insert(limits.end(), {x.shape[d], ctx.constant(INT32_MAX), x.shape[d]});
  }
  std::vector<sym::Expr> v = runtimeValues(c, vals, "slice", -INT32_MAX, INT32_MAX, limits);
  std::vector<sym::Expr> begin, step;
  ir::Shape shape;
  for (int d = 0; d < rank; ++d) {
    begin.push_back(v[3 * d]);
    step.push_back(v[3 * d + 1]);
    shape.push_back(sym::max(v[3 * d + 2], ctx.constant(0))); // lengths are >= 0
    c.guardEqual(sym::min(sym::max(step[d], -step[d]), ctx.constant(1)), ctx.constant(1),
                 fmt::format("slice step of dim {} must be nonzero", d));
  }
  Loader inner = x.load;
  c.out(0, c.pointwise(x.dtype, shape, [=](const Index &i) {
    Index src(rank);
    for (int d = 0; d < rank; ++d)
      src[d] = begin[d] + i[d] * step[d];
    return inner(src);
  }));
}

void lowerSlice(OpCtx &c) {
  LTensor x = c.in(0);
  if (c.node.opset >= 10 &&
      (!c.symIn(1) || !c.symIn(2) || (c.has(3) && !c.symIn(3)) || (c.has(4) && !c.symIn(4)))) {
    lowerRuntimeSlice(c, x);
    return;
  }
  std::vector<sym::Expr> starts, ends;
  std::vector<int64_t> axes, steps;
  if (c.node.opset < 10) {
    starts = constants(c.ctx(), c.node.attrInts("starts"));
    ends = constants(c.ctx(), c.node.attrInts("ends"));
    axes = c.node.attrInts("axes");
  } else {
    starts = c.requireSymIn(1, "starts");
    ends = c.requireSymIn(2, "ends");
    if (c.has(3)) axes = c.requireIntsIn(3, "axes");
    if (c.has(4)) steps = c.requireIntsIn(4, "steps");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  int rank = x.rank();
  sym::Context &ctx = c.ctx();
  std::vector<sym::Expr> begin(rank, ctx.constant(0));
  std::vector<int64_t> step(rank, 1);
  ir::Shape shape = x.shape;
  for (size_t k = 0; k < axes.size(); ++k) {
    int d = c.normAxis(axes[k], rank);
    sym::Expr dim = x.shape[d];
    int64_t s = steps[k];
    if (s == 0) fail("{}: step 0", c.node.describe());
    auto norm = [&](sym::Expr v) {
      if (v.isConst() && v->value < 0) return dim + v;
      if (v.isConst() && v->value > INT32_MAX) return dim;
      return v;
    };
    sym::Expr st = norm(starts[k]), en = norm(ends[k]);
    if (ends[k].isConst() && ends[k]->value < -(int64_t)INT32_MAX) en = ctx.constant(-1);
    if (s > 0) {
      st = clampIndex(st, ctx.constant(0), dim);
      en = clampIndex(en, ctx.constant(0), dim);
      shape[d] = sym::max(sym::floorDiv(en - st + (s - 1), s), ctx.constant(0));
    } else {
      st = clampIndex(st, ctx.constant(-1), dim - 1);
      en = clampIndex(en, ctx.constant(-1), dim - 1);
      shape[d] = sym::max(sym::floorDiv(st - en + (-s - 1), -s), ctx.constant(0));
    }
    begin[d] = st;
    step[d] = s;
  }
  Loader inner = x.load;
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 Index src(rank);
                 for (int d = 0; d < rank; ++d)
                   src[d] = begin[d] + i[d] * step[d];
                 return inner(src);
               },
               x.cheap));
}

void lowerSplit(OpCtx &c) {
  LTensor x = c.in(0);
  int axis = c.normAxis(c.node.attrInt("axis", 0), x.rank());
  size_t n = c.node.outputs.size();
  std::vector<sym::Expr> sizes;
  if (c.node.hasAttr("split"))
    sizes = constants(c.ctx(), c.node.attrInts("split"));
  else if (c.node.opset >= 13 && c.has(1))
    sizes = c.requireSymIn(1, "split", 0);
  if (sizes.empty()) {
    sym::Expr dim = x.shape[axis];
    int64_t parts = c.node.attrInt("num_outputs", static_cast<int64_t>(n));
    sym::Expr chunk = sym::floorDiv(dim + (parts - 1), parts);
    sym::Expr used = c.ctx().constant(0);
    for (size_t k = 0; k < n; ++k) {
      sym::Expr sz = k + 1 == n ? dim - used : chunk;
      sizes.push_back(sz);
      used = used + sz;
    }
  }
  if (sizes.size() != n)
    fail("{}: {} split sizes for {} outputs", c.node.describe(), sizes.size(), n);
  sym::Expr off = c.ctx().constant(0);
  for (size_t k = 0; k < n; ++k) {
    ir::Shape shape = x.shape;
    shape[axis] = sizes[k];
    Loader inner = x.load;
    sym::Expr o = off;
    c.out(k, c.pointwise(
                 x.dtype, shape,
                 [=](const Index &i) {
                   Index src = i;
                   src[axis] = i[axis] + o;
                   return inner(src);
                 },
                 x.cheap));
    off = off + sizes[k];
  }
}

void lowerGather(OpCtx &c) {
  LTensor data = c.in(0), ind = c.in(1);
  int axis = c.normAxis(c.node.attrInt("axis", 0), data.rank());
  ir::Shape shape;
  for (int d = 0; d < axis; ++d)
    shape.push_back(data.shape[d]);
  for (auto &s : ind.shape)
    shape.push_back(s);
  for (int d = axis + 1; d < data.rank(); ++d)
    shape.push_back(data.shape[d]);
  int ir = ind.rank();
  sym::Expr dim = data.shape[axis];
  lower::Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(data.dtype, shape, [=](const Index &i) {
    Index idx(i.begin() + axis, i.begin() + axis + ir);
    VRef iv = loop::cast(ind.load(idx), DType::Int64);
    Index src;
    for (int d = 0; d < axis; ++d)
      src.push_back(i[d]);
    sym::Context &ctx = dim.ctx();
    if (auto s = loop::asSym(iv, ctx)) {
      sym::Expr e = *s;
      if (e.isConst() && e->value < 0) e = e + dim;
      src.push_back(e);
    } else {
      // Negative indices wrap; the value becomes an indirect index symbol.
      VRef dimv = loop::symInt(dim);
      VRef wrapped =
          loop::select(loop::binary(BinaryOp::Lt, iv, loop::constantInt(DType::Int64, 0)),
                       loop::binary(BinaryOp::Add, iv, dimv), iv);
      sym::Expr var = low->newVar("g", dim);
      src.push_back(var);
      for (int d = axis + 1; d < data.rank(); ++d)
        src.push_back(i[d - 1 + ir]);
      // Clamped so a bad index cannot read outside the tensor.
      VRef clamped =
          loop::binary(BinaryOp::Max, loop::binary(BinaryOp::Min, wrapped, loop::symInt(dim - 1)),
                       loop::constantInt(DType::Int64, 0));
      return loop::bindIndirect(data.load(src), var, clamped);
    }
    for (int d = axis + 1; d < data.rank(); ++d)
      src.push_back(i[d - 1 + ir]);
    return data.load(src);
  }));
}

void lowerExpand(OpCtx &c) {
  LTensor x = c.in(0);
  std::vector<sym::Expr> req = c.requireSymIn(1, "shape", 1);
  ir::Shape shape = broadcastShapes(x.shape, req, c.node.describe());
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(
               x.dtype, shape, [=](const Index &i) { return loadBroadcast(*ctx, x, shape, i); },
               x.cheap));
}

void lowerConstantOfShape(OpCtx &c) {
  std::vector<sym::Expr> shape = c.requireSymIn(0, "shape", 0);
  DType t = DType::Float32;
  double fv = 0;
  int64_t iv = 0;
  if (c.node.hasAttr("value")) {
    auto &tensor = c.node.attrs.at("value").tensor;
    if (!tensor || tensor->numel() != 1 || tensor->dtype == DType::String)
      fail("{}: attribute 'value' must be a one-element numeric tensor", c.node.describe());
    t = tensor->dtype;
    if (isFloat(t))
      fv = tensor->getDouble(0);
    else
      iv = tensor->getInt(0);
  }
  VRef v = isFloat(t) ? loop::constant(t, fv) : loop::constantInt(t, iv);
  c.out(0, c.pointwise(
               t, shape, [v](const Index &) { return v; }, true));
}

void lowerRange(OpCtx &c) {
  LTensor st = c.in(0);
  auto s = c.symIn(0), l = c.symIn(1), d = c.symIn(2);
  for (size_t i = 0; i < 3; ++i)
    if (c.in(i).rank() > 1 || (c.in(i).rank() == 1 && !c.in(i).shape[0].isConst(1)))
      fail("{}: input {} must be a scalar", c.node.describe(), i);
  DType t = st.dtype;
  if (s && l && d && (*d)[0].isConst() && (*d)[0]->value != 0) {
    int64_t delta = (*d)[0]->value;
    sym::Expr n =
        sym::max(sym::floorDiv((*l)[0] - (*s)[0] + (delta > 0 ? delta - 1 : delta + 1), delta),
                 c.ctx().constant(0));
    if (delta < 0)
      n = sym::max(sym::floorDiv((*s)[0] - (*l)[0] + (-delta - 1), -delta), c.ctx().constant(0));
    sym::Expr start = (*s)[0];
    c.out(0, c.pointwise(t, {n},
                         [=](const Index &i) { return loop::symInt(start + i[0] * delta, t); }));
    return;
  }
  const ir::TensorData *a = c.constIn(0), *b = c.constIn(1), *e = c.constIn(2);
  if (!a || !b || !e) {
    // Bounds from run-time data: the length is a run-time symbol, the values loads.
    // ONNX says scalars; exporters also pass one-element tensors (read at index 0).
    auto first = [&](size_t k) {
      LTensor v = c.in(k);
      return v.load(Index(v.rank(), c.ctx().constant(0)));
    };
    VRef s0 = first(0), l0 = first(1), d0 = first(2);
    auto f64 = [](VRef v) { return loop::cast(v, DType::Float64); };
    VRef len = loop::unary(
        UnaryOp::Ceil,
        loop::binary(BinaryOp::Div, loop::binary(BinaryOp::Sub, f64(l0), f64(s0)), f64(d0)));
    len = loop::binary(BinaryOp::Max, len, loop::constant(DType::Float64, 0));
    sym::Expr n = c.runtimeSymbol(loop::cast(len, DType::Int64), "length", 0, INT32_MAX);
    c.out(0, c.pointwise(t, {n}, [=](const Index &i) {
      return loop::binary(BinaryOp::Add, s0,
                          loop::binary(BinaryOp::Mul, loop::cast(loop::symInt(i[0]), t), d0));
    }));
    return;
  }
  double start = a->getDouble(0), limit = b->getDouble(0), delta = e->getDouble(0);
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
  c.out(0, c.pointwise(t, {c.ctx().constant(n)}, [=](const Index &i) {
    return loop::binary(
        BinaryOp::Add, loop::constant(t, start),
        loop::binary(BinaryOp::Mul, loop::cast(loop::symInt(i[0]), t), loop::constant(t, delta)));
  }));
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
                        {"Slice", 1, lowerSlice},
                        {"Split", 1, lowerSplit},
                        {"Gather", 1, lowerGather},
                        {"Expand", 8, lowerExpand},
                        {"ConstantOfShape", 9, lowerConstantOfShape},
                        {"Range", 11, lowerRange},
                    });
}

} // namespace kiln::lower
