// More ONNX ops: data movement (Trilu, GatherElements, GatherND, Pad, Tile,
// DepthToSpace, SpaceToDepth, ReverseSequence, OneHot, EyeLike), scans (CumSum, CumProd,
// Hardmax) and small elementwise ops (Dropout at inference, Shrink, Celu).
#include "lower/ops_common.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

VRef cval(DType t, double v) {
  return isFloat(t) ? loop::constant(t, v) : loop::constantInt(t, static_cast<int64_t>(v));
}

/// A tensor whose loads may take indirect (data-dependent) indices: a buffer.
LTensor asBuffer(OpCtx &c, const LTensor &t) {
  return t.buffer ? t : c.realize(t);
}

/// Wraps a negative index by `dim` and clamps into [0, dim-1] (bad indices never read
/// outside the tensor).
VRef wrapClamp(VRef iv, sym::Expr dim) {
  VRef dimv = sv(dim);
  VRef w = loop::select(bin(BinaryOp::Lt, iv, i64(0)), bin(BinaryOp::Add, iv, dimv), iv);
  return bin(BinaryOp::Max, bin(BinaryOp::Min, w, sv(dim - 1)), i64(0));
}

/// If iv is a compile-time (symbolic) integer, the wrapped index expression.
std::optional<sym::Expr> staticIndex(const VRef &iv, sym::Expr dim) {
  auto s = loop::asSym(iv, dim.ctx());
  if (!s) return std::nullopt;
  sym::Expr e = *s;
  if (e.isConst() && e->value < 0) e = e + dim;
  return e;
}

// ---------------------------------------------------------------- Dropout

void lowerDropout(OpCtx &c) {
  LTensor x = c.in(0);
  bool training = false;
  double ratio = c.node.attrFloat("ratio", 0.5f);
  if (c.node.opset < 7) training = c.node.hasAttr("is_test") && c.node.attrInt("is_test", 0) == 0;
  if (c.node.opset >= 12) {
    std::optional<VRef> ratioV;
    if (c.has(1)) {
      if (const ir::TensorData *r = c.constIn(1))
        ratio = r->getDouble(0);
      else
        ratioV = scalarInput(c, 1, DType::Float64);
    } else {
      ratio = 0.5;
    }
    if (c.has(2)) {
      if (const ir::TensorData *tm = c.constIn(2)) {
        training = tm->getInt(0) != 0;
        if (training && ratioV) c.unsupported("Dropout in training mode");
      } else {
        // training_mode known only at run time. kiln does inference only: with
        // training_mode false or ratio 0 the op is the identity; a random drop is refused
        // before the run by a guard on a run-time symbol (never a plausible wrong result).
        VRef tmv = *scalarInput(c, 2, DType::Bool);
        VRef ratioNZ = ratioV ? bin(BinaryOp::Ne, *ratioV, loop::constant(DType::Float64, 0))
                              : loop::constantInt(DType::Bool, ratio != 0.0);
        sym::Expr drops = c.runtimeSymbol(
            loop::cast(bin(BinaryOp::And, tmv, ratioNZ), DType::Int64), "random_drop", 0, 1);
        c.guardEqual(drops, c.ctx().constant(0),
                     "Dropout with training_mode true and ratio > 0 draws random masks, which "
                     "kiln does not support (inference only)");
      }
    }
  }
  if (training && ratio != 0.0) c.unsupported("Dropout in training mode");
  bool wantMask = c.node.outputs.size() > 1 && c.node.outputs[1];
  DType mt = c.node.opset >= 10 ? DType::Bool : x.dtype;
  VRef one = mt == DType::Bool ? loop::constantInt(DType::Bool, 1) : cval(mt, 1);
  c.out(0, x);
  if (wantMask)
    c.out(1, c.pointwise(
                 mt, x.shape, [one](const Index &) { return one; }, true));
}

// ---------------------------------------------------------------- Trilu

void lowerTrilu(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() < 2) fail("{}: input must have rank >= 2", c.node.describe());
  bool upper = c.node.attrInt("upper", 1) != 0;
  VRef k = i64(0);
  if (c.has(1)) {
    if (auto s = c.symIn(1); s && !s->empty())
      k = sv((*s)[0]);
    else
      k = *scalarInput(c, 1, DType::Int64);
  }
  int rank = x.rank();
  DType t = x.dtype;
  Loader inner = x.load;
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    VRef diff = sv(i[rank - 1] - i[rank - 2]);
    VRef keep = bin(upper ? BinaryOp::Ge : BinaryOp::Le, diff, k);
    VRef zero = t == DType::Bool ? loop::constantInt(t, 0) : cval(t, 0);
    return loop::select(keep, inner(i), zero);
  }));
}

// ---------------------------------------------------------------- GatherElements

void lowerGatherElements(OpCtx &c) {
  LTensor data = asBuffer(c, c.in(0)), ind = c.in(1);
  int axis = c.normAxis(c.node.attrInt("axis", 0), data.rank());
  if (ind.rank() != data.rank())
    fail("{}: indices rank {} differs from data rank {}", c.node.describe(), ind.rank(),
         data.rank());
  sym::Expr dim = data.shape[axis];
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(data.dtype, ind.shape, [=](const Index &i) {
    VRef iv = loop::cast(ind.load(i), DType::Int64);
    Index src = i;
    if (auto e = staticIndex(iv, dim)) {
      src[axis] = *e;
      return data.load(src);
    }
    sym::Expr var = low->newVar("g", dim);
    src[axis] = var;
    return loop::bindIndirect(data.load(src), var, wrapClamp(iv, dim));
  }));
}

// ---------------------------------------------------------------- GatherND

void lowerGatherND(OpCtx &c) {
  LTensor data = asBuffer(c, c.in(0)), ind = c.in(1);
  int64_t b = c.node.attrInt("batch_dims", 0);
  int r = data.rank(), q = ind.rank();
  if (q < 1) fail("{}: indices must have rank >= 1", c.node.describe());
  int64_t m = c.requireStatic(ind.shape[q - 1], "the last dim of indices");
  if (b < 0 || b >= q || b >= r || m > r - b)
    fail("{}: invalid batch_dims {} / index depth {} for ranks {} and {}", c.node.describe(), b, m,
         r, q);
  ir::Shape shape(ind.shape.begin(), ind.shape.end() - 1);
  for (int d = static_cast<int>(b + m); d < r; ++d)
    shape.push_back(data.shape[d]);
  Lowerer *low = &c.lowerer();
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(data.dtype, shape, [=](const Index &i) {
    Index src(i.begin(), i.begin() + b);
    Index pre(i.begin(), i.begin() + (q - 1));
    std::vector<std::pair<sym::Expr, VRef>> binds;
    for (int64_t k = 0; k < m; ++k) {
      Index ii = pre;
      ii.push_back(ctx->constant(k));
      VRef iv = loop::cast(ind.load(ii), DType::Int64);
      sym::Expr dim = data.shape[b + k];
      if (auto e = staticIndex(iv, dim)) {
        src.push_back(*e);
        continue;
      }
      sym::Expr var = low->newVar("g", dim);
      src.push_back(var);
      binds.push_back({var, wrapClamp(iv, dim)});
    }
    for (int d = q - 1; d < static_cast<int>(i.size()); ++d)
      src.push_back(i[d]);
    VRef v = data.load(src);
    for (auto &[var, val] : binds)
      v = loop::bindIndirect(v, var, val);
    return v;
  }));
}

// ---------------------------------------------------------------- Pad

/// Pad-18 axes given as run-time data: each dim's begin/end pads become symbols computed
/// before the run (the pads of the axes equal to it; 0 when none is), and the axes are
/// range-checked there.
void padsAtRuntimeAxes(OpCtx &c, int rank, const std::vector<sym::Expr> &pads,
                       std::vector<sym::Expr> &pb, std::vector<sym::Expr> &pe) {
  LTensor at = c.in(3);
  if (at.rank() != 1) fail("{}: axes must be 1-D", c.node.describe());
  int64_t k = c.requireStatic(at.shape[0], "the number of axes");
  if (pads.size() != static_cast<size_t>(2 * k))
    fail("{}: {} pads for {} axes", c.node.describe(), pads.size(), k);
  sym::Context &ctx = c.ctx();
  LTensor norm = c.pointwise(DType::Int64, {ctx.constant(k)}, [=](const Index &i) {
    VRef a = loop::cast(at.load(i), DType::Int64);
    return loop::select(bin(BinaryOp::Lt, a, i64(0)), bin(BinaryOp::Add, a, i64(rank)), a);
  });
  std::vector<sym::Expr> ax = c.runtimeSymbols(norm, "axis", 0, rank - 1);
  std::vector<VRef> vals(2 * rank, i64(0));
  for (int d = 0; d < rank; ++d)
    for (int64_t j = 0; j < k; ++j) {
      VRef hit = bin(BinaryOp::Eq, sv(ax[j]), i64(d));
      vals[d] = bin(BinaryOp::Add, vals[d], loop::select(hit, sv(pads[j]), i64(0)));
      vals[rank + d] =
          bin(BinaryOp::Add, vals[rank + d], loop::select(hit, sv(pads[k + j]), i64(0)));
    }
  LTensor all = c.pointwise(DType::Int64, {ctx.constant(2 * rank)}, [vals](const Index &i) {
    VRef v = vals.back();
    for (size_t j = vals.size() - 1; j-- > 0;)
      v = loop::select(bin(BinaryOp::Eq, sv(i[0]), i64(static_cast<int64_t>(j))), vals[j], v);
    return v;
  });
  std::vector<sym::Expr> syms = c.runtimeSymbols(all, "pad", -INT32_MAX, INT32_MAX);
  for (int d = 0; d < rank; ++d) {
    pb[d] = syms[d];
    pe[d] = syms[rank + d];
  }
}

void lowerPad(OpCtx &c) {
  LTensor x = c.in(0);
  int rank = x.rank();
  sym::Context &ctx = c.ctx();
  std::string mode = c.node.attrString("mode", "constant");
  std::vector<sym::Expr> pads;
  std::optional<VRef> value;
  DType t = x.dtype;
  if (c.node.opset < 11) {
    std::vector<int64_t> p =
        c.node.hasAttr("pads") ? c.node.attrInts("pads") : c.node.attrInts("paddings");
    pads = constants(ctx, p);
    value = cval(t, c.node.attrFloat("value", 0.0f));
  } else {
    pads = c.requireSymIn(1, "pads", -INT32_MAX);
    if (c.has(2)) {
      if (const ir::TensorData *v = c.constIn(2); v && v->numel() >= 1)
        value = isFloat(t) ? cval(t, v->getDouble(0))
                           : (t == DType::Bool ? loop::constantInt(t, v->getInt(0) != 0)
                                               : loop::constantInt(t, v->getInt(0)));
      else
        value = scalarInput(c, 2, t);
    }
  }
  if (!value) value = t == DType::Bool ? loop::constantInt(t, 0) : cval(t, 0);
  std::vector<int> axes;
  std::vector<sym::Expr> pb(rank, ctx.constant(0)), pe(rank, ctx.constant(0));
  auto knownAxes = c.node.opset >= 18 && c.has(3) ? c.symIn(3) : std::nullopt;
  bool runtimeAxes = c.node.opset >= 18 && c.has(3) && !knownAxes;
  if (runtimeAxes) {
    padsAtRuntimeAxes(c, rank, pads, pb, pe);
  } else {
    if (knownAxes) {
      for (const sym::Expr &a : *knownAxes) {
        if (!a.isConst()) fail("{}: axes must be integers known now", c.node.describe());
        axes.push_back(c.normAxis(a->value, rank));
      }
    } else {
      for (int d = 0; d < rank; ++d)
        axes.push_back(d);
    }
    if (pads.size() != 2 * axes.size())
      fail("{}: {} pads for {} axes", c.node.describe(), pads.size(), axes.size());
    for (size_t k = 0; k < axes.size(); ++k) {
      pb[axes[k]] = pads[k];
      pe[axes[k]] = pads[axes.size() + k];
    }
  }
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    fail("{}: pad mode '{}' is not valid", c.node.describe(), mode);
  ir::Shape shape = x.shape;
  for (int d = 0; d < rank; ++d)
    shape[d] = x.shape[d] + pb[d] + pe[d];
  Loader inner = x.load;
  VRef fill = *value;
  sym::Context *cx = &ctx;
  auto absE = [](sym::Expr e) { return sym::max(e, -e); };
  c.out(0, c.pointwise(t, shape, [=](const Index &i) {
    Index src(rank);
    VRef inside;
    for (int d = 0; d < rank; ++d) {
      sym::Expr dim = x.shape[d];
      sym::Expr s = i[d] - pb[d];
      if (pb[d].isConst(0) && pe[d].isConst() && pe[d]->value <= 0) {
        src[d] = s;
        continue;
      }
      if (mode == "constant") {
        src[d] = sym::max(sym::min(s, dim - 1), cx->constant(0));
        VRef ok =
            bin(BinaryOp::And, bin(BinaryOp::Ge, sv(s), i64(0)), bin(BinaryOp::Lt, sv(s), sv(dim)));
        if (pb[d].isConst() && pb[d]->value <= 0) // no left padding: only the right bound
          ok = bin(BinaryOp::Lt, sv(s), sv(dim));
        else if (pe[d].isConst() && pe[d]->value <= 0)
          ok = bin(BinaryOp::Ge, sv(s), i64(0));
        inside = inside ? bin(BinaryOp::And, inside, ok) : ok;
      } else if (mode == "edge") {
        src[d] = sym::max(sym::min(s, dim - 1), cx->constant(0));
      } else if (mode == "reflect") {
        sym::Expr hi = dim - 1;
        src[d] = sym::max(sym::min(hi - absE(hi - absE(s)), hi), cx->constant(0));
      } else { // wrap
        src[d] = sym::mod(s, dim);
      }
    }
    VRef v = inner(src);
    return inside ? loop::select(inside, v, fill) : v;
  }));
}

// ---------------------------------------------------------------- Tile

void lowerTile(OpCtx &c) {
  LTensor x = c.in(0);
  std::vector<sym::Expr> reps = c.requireSymIn(1, "repeats", 0);
  if ((int)reps.size() != x.rank())
    fail("{}: {} repeats for rank {}", c.node.describe(), reps.size(), x.rank());
  ir::Shape shape = x.shape;
  for (int d = 0; d < x.rank(); ++d)
    shape[d] = x.shape[d] * reps[d];
  Loader inner = x.load;
  ir::Shape xs = x.shape;
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 Index src(i.size());
                 for (size_t d = 0; d < i.size(); ++d)
                   src[d] = xs[d].isConst(1) ? xs[d].ctx().constant(0) : sym::mod(i[d], xs[d]);
                 return inner(src);
               },
               x.cheap));
}

// ---------------------------------------------------------------- DepthToSpace / SpaceToDepth

void lowerDepthToSpace(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() != 4) fail("{}: input must be 4-D", c.node.describe());
  int64_t b = c.node.attrInt("blocksize", 0);
  if (b <= 0) fail("{}: blocksize must be positive", c.node.describe());
  bool crd = c.node.attrString("mode", "DCR") == "CRD";
  sym::Expr C = sym::floorDiv(x.shape[1], b * b);
  ir::Shape shape{x.shape[0], C, x.shape[2] * b, x.shape[3] * b};
  Loader inner = x.load;
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 sym::Expr h = sym::floorDiv(i[2], b), bh = sym::mod(i[2], b);
                 sym::Expr w = sym::floorDiv(i[3], b), bw = sym::mod(i[3], b);
                 sym::Expr ch = crd ? i[1] * (b * b) + bh * b + bw : (bh * b + bw) * C + i[1];
                 return inner({i[0], ch, h, w});
               },
               x.cheap));
}

void lowerSpaceToDepth(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() != 4) fail("{}: input must be 4-D", c.node.describe());
  int64_t b = c.node.attrInt("blocksize", 0);
  if (b <= 0) fail("{}: blocksize must be positive", c.node.describe());
  sym::Expr C = x.shape[1];
  ir::Shape shape{x.shape[0], C * (b * b), sym::floorDiv(x.shape[2], b),
                  sym::floorDiv(x.shape[3], b)};
  Loader inner = x.load;
  c.out(0, c.pointwise(
               x.dtype, shape,
               [=](const Index &i) {
                 sym::Expr ch = sym::mod(i[1], C), blk = sym::floorDiv(i[1], C);
                 sym::Expr bh = sym::floorDiv(blk, b), bw = sym::mod(blk, b);
                 return inner({i[0], ch, i[2] * b + bh, i[3] * b + bw});
               },
               x.cheap));
}

// ---------------------------------------------------------------- Hardmax

void lowerHardmax(OpCtx &c) {
  LTensor x = c.in(0);
  bool legacy = c.node.opset < 13;
  int axis = c.normAxis(c.node.attrInt("axis", legacy ? 1 : -1), x.rank());
  ir::Shape orig = x.shape;
  if (legacy) {
    x = reshapeView(c.ctx(), x,
                    {product(c.ctx(), orig, 0, axis), product(c.ctx(), orig, axis, orig.size())});
    axis = 1;
  }
  LTensor am = c.reduce(x, {axis}, true, ReduceOp::ArgMax, x.dtype);
  DType t = x.dtype;
  int ax = axis;
  LTensor r = c.pointwise(t, x.shape, [=](const Index &i) {
    Index j = i;
    j[ax] = i[ax].ctx().constant(0);
    return loop::select(bin(BinaryOp::Eq, am.load(j), sv(i[ax])), cval(t, 1), cval(t, 0));
  });
  if (legacy) r = reshapeView(c.ctx(), r, orig);
  c.out(0, r);
}

// ---------------------------------------------------------------- CumSum

/// Inclusive/exclusive, forward/reverse running sum (CumSum) or product (CumProd) along
/// `axis` (acc dtype): a reduction over r of select(r <= i, x[r], identity), O(n^2) per line.
LTensor cumSumAlong(OpCtx &c, const LTensor &x, int axis, bool exclusive, bool reverse, DType acc,
                    ReduceOp op) {
  sym::Expr n = x.shape[axis];
  ir::Shape win = x.shape;
  win.push_back(n);
  int rank = x.rank();
  Loader inner = x.load;
  BinaryOp cmp = reverse ? (exclusive ? BinaryOp::Gt : BinaryOp::Ge)
                         : (exclusive ? BinaryOp::Lt : BinaryOp::Le);
  LTensor w = c.pointwise(acc, win, [=](const Index &i) {
    Index src(i.begin(), i.begin() + rank);
    sym::Expr r = i[rank];
    src[axis] = r;
    return loop::select(bin(cmp, sv(r), sv(i[axis])), loop::cast(inner(src), acc),
                        cval(acc, op == ReduceOp::Prod ? 1 : 0));
  });
  return c.reduce(w, {rank}, false, op, acc);
}

void lowerCumSum(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() == 0) fail("{}: input must have rank >= 1", c.node.describe());
  bool exclusive = c.node.attrInt("exclusive", 0) != 0;
  bool reverse = c.node.attrInt("reverse", 0) != 0;
  DType t = x.dtype;
  DType acc = isFloat(t) ? accOf(t) : t;
  ReduceOp op = c.node.op == "CumProd" ? ReduceOp::Prod : ReduceOp::Sum;
  int rank = x.rank();
  LTensor s;
  auto a = c.symIn(1);
  if (a && a->size() == 1 && (*a)[0].isConst()) {
    s = cumSumAlong(c, x, c.normAxis((*a)[0]->value, rank), exclusive, reverse, acc, op);
  } else {
    // Axis known only at run time: one running sum per candidate axis, chosen by value.
    VRef av = *scalarInput(c, 1, DType::Int64);
    av = loop::select(bin(BinaryOp::Lt, av, i64(0)), bin(BinaryOp::Add, av, i64(rank)), av);
    std::vector<LTensor> per;
    LTensor src = x.cheap || x.buffer ? x : c.realize(x);
    for (int d = 0; d < rank; ++d)
      per.push_back(cumSumAlong(c, src, d, exclusive, reverse, acc, op));
    s = c.pointwise(acc, x.shape, [=](const Index &i) {
      VRef r = per[rank - 1].load(i);
      for (int d = rank - 1; d-- > 0;)
        r = loop::select(bin(BinaryOp::Eq, av, i64(d)), per[d].load(i), r);
      return r;
    });
  }
  if (acc != t) s = mapUnary(c, s, [t](VRef v) { return loop::cast(v, t); });
  c.out(0, s);
}

// ---------------------------------------------------------------- OneHot

void lowerOneHot(OpCtx &c) {
  LTensor ind = c.in(0), vals = c.in(2);
  sym::Expr depth;
  if (const ir::TensorData *d = c.constIn(1))
    depth = c.ctx().constant(static_cast<int64_t>(d->getDouble(0)));
  else
    depth = c.requireScalarSymIn(1, "depth", 1);
  int outRank = ind.rank() + 1;
  int axis = c.normAxis(c.node.attrInt("axis", -1), outRank);
  ir::Shape shape = ind.shape;
  shape.insert(shape.begin() + axis, depth);
  DType t = vals.dtype;
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(t, shape, [=](const Index &i) {
    Index ii = i;
    ii.erase(ii.begin() + axis);
    VRef iv = loop::cast(ind.load(ii), DType::Int64);
    VRef dv = sv(depth);
    iv = loop::select(bin(BinaryOp::Lt, iv, i64(0)), bin(BinaryOp::Add, iv, dv), iv);
    VRef on = vals.load({ctx->constant(1)}), off = vals.load({ctx->constant(0)});
    return loop::select(bin(BinaryOp::Eq, iv, sv(i[axis])), on, off);
  }));
}

// ---------------------------------------------------------------- EyeLike

void lowerEyeLike(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() != 2) fail("{}: input must be 2-D", c.node.describe());
  DType t = x.dtype;
  if (c.node.hasAttr("dtype")) {
    int64_t code = c.node.attrInt("dtype", 0);
    if (!dtypeFromOnnx(static_cast<int>(code), t))
      c.unsupported(fmt::format("EyeLike dtype {}", code));
  }
  int64_t k = c.node.attrInt("k", 0);
  c.out(0, c.pointwise(
               t, x.shape,
               [=](const Index &i) {
                 VRef one = t == DType::Bool ? loop::constantInt(t, 1) : cval(t, 1);
                 VRef zero = t == DType::Bool ? loop::constantInt(t, 0) : cval(t, 0);
                 return loop::select(bin(BinaryOp::Eq, sv(i[1] - i[0]), i64(k)), one, zero);
               },
               true));
}

// ---------------------------------------------------------------- Shrink / Celu

void lowerShrink(OpCtx &c) {
  double lambd = c.node.attrFloat("lambd", 0.5f), bias = c.node.attrFloat("bias", 0.0f);
  LTensor x = c.in(0);
  DType t = x.dtype;
  // Compare in float so that integer inputs honour fractional lambd.
  DType ct = isFloat(t) ? t : DType::Float64;
  c.out(0, mapUnary(c, x, [=](VRef v) {
          VRef f = loop::cast(v, ct);
          VRef lo = bin(BinaryOp::Lt, f, loop::constant(ct, -lambd));
          VRef hi = bin(BinaryOp::Gt, f, loop::constant(ct, lambd));
          VRef r = loop::select(lo, bin(BinaryOp::Add, f, loop::constant(ct, bias)),
                                loop::select(hi, bin(BinaryOp::Sub, f, loop::constant(ct, bias)),
                                             loop::constant(ct, 0)));
          return loop::cast(r, t);
        }));
}

void lowerCelu(OpCtx &c) {
  double alpha = c.node.attrFloat("alpha", 1.0f);
  LTensor x = c.in(0);
  requireFloat(c, x, "Celu input");
  c.out(0, mapUnary(c, x, [=](VRef v) {
          DType t = v->dtype;
          VRef e = bin(BinaryOp::Sub,
                       loop::unary(UnaryOp::Exp, bin(BinaryOp::Div, v, loop::constant(t, alpha))),
                       loop::constant(t, 1));
          VRef neg = bin(BinaryOp::Min, loop::constant(t, 0),
                         bin(BinaryOp::Mul, loop::constant(t, alpha), e));
          return bin(BinaryOp::Add, bin(BinaryOp::Max, loop::constant(t, 0), v), neg);
        }));
}

// ---------------------------------------------------------------- ReverseSequence

void lowerReverseSequence(OpCtx &c) {
  LTensor x = asBuffer(c, c.in(0)), lens = c.in(1);
  int batchAxis = c.normAxis(c.node.attrInt("batch_axis", 1), x.rank());
  int timeAxis = c.normAxis(c.node.attrInt("time_axis", 0), x.rank());
  if (batchAxis == timeAxis) fail("{}: batch_axis and time_axis must differ", c.node.describe());
  sym::Expr T = x.shape[timeAxis];
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(x.dtype, x.shape, [=](const Index &i) {
    VRef L = loop::cast(lens.load({i[batchAxis]}), DType::Int64);
    VRef t = sv(i[timeAxis]);
    VRef rev = bin(BinaryOp::Sub, bin(BinaryOp::Sub, L, i64(1)), t);
    VRef srcT = loop::select(bin(BinaryOp::Lt, t, L), rev, t);
    Index src = i;
    if (auto e = loop::asSym(srcT, T.ctx())) {
      src[timeAxis] = *e;
      return x.load(src);
    }
    sym::Expr var = low->newVar("g", T);
    src[timeAxis] = var;
    VRef clamped = bin(BinaryOp::Max, bin(BinaryOp::Min, srcT, sv(T - 1)), i64(0));
    return loop::bindIndirect(x.load(src), var, clamped);
  }));
}

} // namespace

void registerTensorOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Dropout", 1, lowerDropout},
                        {"Trilu", 14, lowerTrilu},
                        {"GatherElements", 11, lowerGatherElements},
                        {"GatherND", 11, lowerGatherND},
                        {"Pad", 1, lowerPad},
                        {"Tile", 6, lowerTile},
                        {"DepthToSpace", 1, lowerDepthToSpace},
                        {"SpaceToDepth", 1, lowerSpaceToDepth},
                        {"Hardmax", 1, lowerHardmax},
                        {"CumSum", 11, lowerCumSum},
                        {"CumProd", 26, lowerCumSum},
                        {"OneHot", 9, lowerOneHot},
                        {"EyeLike", 9, lowerEyeLike},
                        {"Shrink", 9, lowerShrink},
                        {"Celu", 12, lowerCelu},
                        {"ReverseSequence", 10, lowerReverseSequence},
                    });
}

} // namespace kiln::lower
