// Ops that select or generate index ranges: Slice, Split, Gather, Expand, ConstantOfShape and
// Range. Like the shape ops (ops_shape.cpp) they are views where they can be: Slice, Split
// and Expand only remap indices.
#include "lower/ops_common.h"
#include "lower/runtime_shape.h"

namespace kiln::lower {

namespace {

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
  const char *perStart[] = {"ends", "axes", "steps"}; // one value per start each
  for (size_t input = 2; input <= 4; ++input)
    if (c.has(input)) requireShape(c, c.in(input), {starts.shape[0]}, perStart[input - 2]);
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
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d].isConst() && shape[d]->value < 0)
      fail("{}: shape element {} is {}; dims cannot be negative", c.node.describe(), d,
           shape[d]->value);
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
  for (size_t i = 1; i < 3; ++i)
    requireSameDtype(c, st, c.in(i), "start, limit and delta");
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

void registerSliceOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Slice", 1, lowerSlice},
                        {"Split", 1, lowerSplit},
                        {"Gather", 1, lowerGather},
                        {"Expand", 8, lowerExpand},
                        {"ConstantOfShape", 9, lowerConstantOfShape},
                        {"Range", 11, lowerRange},
                    });
}

} // namespace kiln::lower
