// Data movement ops: GatherElements, GatherND, Pad, Tile, DepthToSpace, SpaceToDepth and
// ReverseSequence (index remapping, with indirect loads where indices are data).
#include "lower/ops_common.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

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
    value = loop::constant(t, c.node.attrFloat("value", 0.0f));
  } else {
    pads = c.requireSymIn(1, "pads", -INT32_MAX);
    if (c.has(2)) {
      if (const ir::TensorData *v = c.constIn(2); v && v->numel() >= 1)
        value = isFloat(t) ? loop::constant(t, v->getDouble(0))
                           : (t == DType::Bool ? loop::constantInt(t, v->getInt(0) != 0)
                                               : loop::constantInt(t, v->getInt(0)));
      else
        value = scalarInput(c, 2, t);
    }
  }
  if (!value) value = t == DType::Bool ? loop::constantInt(t, 0) : loop::constant(t, 0);
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
                        {"GatherElements", 11, lowerGatherElements},
                        {"GatherND", 11, lowerGatherND},
                        {"Pad", 1, lowerPad},
                        {"Tile", 6, lowerTile},
                        {"DepthToSpace", 1, lowerDepthToSpace},
                        {"SpaceToDepth", 1, lowerSpaceToDepth},
                        {"ReverseSequence", 10, lowerReverseSequence},
                    });
}

} // namespace kiln::lower
