// Model-level ops built from the generic lowering primitives:
//   NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (reductions + indirect gather),
//   ConvTranspose (a generated reduction over input channels and kernel taps).
// RNN / GRU / LSTM are in ops_recurrent.cpp.
#include "lower/gather.h"
#include "lower/ops_common.h"
#include "lower/value_math.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;
using namespace vmath;

// ---- NegativeLogLikelihoodLoss / SoftmaxCrossEntropyLoss ---------------------------

/// Shared tail: loss from log-probabilities `lp` (N,C,d...), targets (N,d...).
void nllFromLogProb(OpCtx &c, const LTensor &lp, const LTensor &target,
                    std::optional<LTensor> weight) {
  std::string reduction = c.node.attrString("reduction", "mean");
  bool hasIi = c.node.hasAttr("ignore_index");
  int64_t ii = c.node.attrInt("ignore_index", 0);
  DType t = lp.dtype, acc = accOf(t);
  Lowerer *low = &c.lowerer();
  sym::Context *cp = &c.ctx();
  ir::Shape ts = target.shape;
  if (lp.rank() < 2 || ts.size() + 1 != lp.shape.size())
    fail("{}: input of rank {} (at least 2: N, C, ...) and target of rank {} (one less) do not "
         "fit",
         c.node.describe(), lp.rank(), ts.size());
  if (weight && weight->rank() != 1)
    fail("{}: weight must have rank 1 (one per class), got rank {}", c.node.describe(),
         weight->rank());
  auto tgt = [=](const Index &i) { return loop::cast(target.load(i), DType::Int64); };
  auto ignored = [=](const Index &i) -> VRef {
    if (!hasIi) return nullptr;
    return loop::binary(BinaryOp::Eq, tgt(i), ic(ii));
  };
  // Per-element weight (0 for ignored targets).
  auto wAt = [=](const Index &i) -> VRef {
    VRef w = fc(acc, 1);
    if (weight) {
      Index wi{cp->constant(0)};
      w = loop::cast(gatherAt(*low, *weight, wi, 0, tgt(i)), acc);
    }
    if (VRef ig = ignored(i)) w = loop::select(ig, fc(acc, 0), w);
    return w;
  };
  auto lossAt = [=](const Index &i) -> VRef {
    Index src{i[0], i[0]};
    src.insert(src.end(), i.begin() + 1, i.end());
    VRef v = loop::cast(gatherAt(*low, lp, src, 1, tgt(i)), acc);
    VRef l = mul(loop::unary(UnaryOp::Neg, v), wAt(i));
    if (VRef ig = ignored(i)) l = loop::select(ig, fc(acc, 0), l);
    return l;
  };
  LTensor loss = c.pointwise(acc, ts, lossAt);
  if (reduction == "none") {
    c.out(0, c.pointwise(t, ts, [=](const Index &i) { return loop::cast(lossAt(i), t); }));
    return;
  }
  std::vector<int> all;
  for (int d = 0; d < (int)ts.size(); ++d)
    all.push_back(d);
  LTensor sum = c.reduce(loss, all, false, ReduceOp::Sum, acc);
  if (reduction == "sum") {
    c.out(0, c.pointwise(t, {}, [=](const Index &i) { return loop::cast(sum.load(i), t); }));
    return;
  }
  if (reduction != "mean") fail("{}: reduction '{}' is not valid", c.node.describe(), reduction);
  LTensor wsum = c.reduce(c.pointwise(acc, ts, wAt), all, false, ReduceOp::Sum, acc);
  c.out(0, c.pointwise(t, {}, [=](const Index &i) {
    return loop::cast(divv(sum.load(i), wsum.load(i)), t);
  }));
}

void lowerNLL(OpCtx &c) {
  LTensor x = c.in(0), target = c.in(1);
  requireFloat(c, x, "NegativeLogLikelihoodLoss input");
  std::optional<LTensor> w;
  if (c.has(2)) w = c.in(2);
  nllFromLogProb(c, x, target, w);
}

void lowerSCE(OpCtx &c) {
  LTensor x = c.in(0), target = c.in(1);
  requireFloat(c, x, "SoftmaxCrossEntropyLoss scores");
  std::optional<LTensor> w;
  if (c.has(2)) w = c.in(2);
  DType t = x.dtype, acc = accOf(t);
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  LTensor m = c.reduce(x, {1}, true, ReduceOp::Max, t);
  auto shifted = [=](const Index &i) {
    return loop::cast(sub(x.load(i), loadBroadcast(*ctx, m, xs, i)), acc);
  };
  LTensor e =
      c.pointwise(acc, xs, [=](const Index &i) { return loop::unary(UnaryOp::Exp, shifted(i)); });
  LTensor s = c.reduce(e, {1}, true, ReduceOp::Sum, acc);
  LTensor lp = c.realize(c.pointwise(t, xs, [=](const Index &i) {
    return loop::cast(sub(shifted(i), loop::unary(UnaryOp::Log, loadBroadcast(*ctx, s, xs, i))), t);
  }));
  nllFromLogProb(c, lp, target, w);
  c.out(1, lp);
}

// ---- ConvTranspose -------------------------------------------------------------------

void lowerConvTranspose(OpCtx &c) {
  LTensor x = c.in(0), wt = c.in(1);
  requireFloat(c, x, "ConvTranspose input");
  int spatial = x.rank() - 2;
  if (spatial < 1) c.unsupported("ConvTranspose with no spatial dims");
  if (wt.rank() != x.rank())
    fail("{}: weights of rank {} do not fit an input of rank {} (expected [C, M/group, k...])",
         c.node.describe(), wt.rank(), x.rank());
  sym::Context &ctx = c.ctx();
  int64_t group = c.node.attrInt("group", 1);
  std::vector<sym::Expr> kernel; // may be symbolic when the weights are a graph input
  for (int d = 0; d < spatial; ++d)
    kernel.push_back(wt.shape[2 + d]);
  size_t n = spatial;
  auto strides = c.node.attrInts("strides", std::vector<int64_t>(n, 1));
  auto dil = c.node.attrInts("dilations", std::vector<int64_t>(n, 1));
  auto pads = c.node.attrInts("pads", std::vector<int64_t>(2 * n, 0));
  auto outPad = c.node.attrInts("output_padding", std::vector<int64_t>(n, 0));
  auto outShapeAttr = c.node.attrInts("output_shape");
  std::string autoPad = c.node.attrString("auto_pad", "NOTSET");
  if (strides.size() != n || dil.size() != n || pads.size() != 2 * n || outPad.size() != n)
    fail("{}: strides/dilations/pads/output_padding do not match {} spatial dims",
         c.node.describe(), n);
  requirePositive(c, strides, "strides");
  requirePositive(c, dil, "dilations");
  if (!outShapeAttr.empty() && outShapeAttr.size() != n) {
    if (outShapeAttr.size() == n + 2)
      outShapeAttr.erase(outShapeAttr.begin(), outShapeAttr.begin() + 2);
    else
      fail("{}: output_shape has {} entries for {} spatial dims", c.node.describe(),
           outShapeAttr.size(), n);
  }
  std::vector<sym::Expr> pb(n), outDims(n);
  for (size_t d = 0; d < n; ++d) {
    sym::Expr in = x.shape[2 + d];
    sym::Expr eff = (kernel[d] - 1) * dil[d] + 1;
    sym::Expr full = (in - 1) * strides[d] + eff + outPad[d];
    bool same = autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER";
    if (!outShapeAttr.empty() || same) {
      sym::Expr target = !outShapeAttr.empty() ? ctx.constant(outShapeAttr[d]) : in * strides[d];
      sym::Expr total = full - target;
      if (autoPad == "SAME_UPPER")
        pb[d] = sym::floorDiv(total, 2);
      else
        pb[d] = total - sym::floorDiv(total, 2);
      outDims[d] = target;
    } else if (autoPad == "VALID" || autoPad == "NOTSET") {
      int64_t b = autoPad == "VALID" ? 0 : pads[d], e = autoPad == "VALID" ? 0 : pads[n + d];
      pb[d] = ctx.constant(b);
      outDims[d] = full - (b + e);
    } else {
      fail("{}: auto_pad '{}' is not valid", c.node.describe(), autoPad);
    }
  }
  sym::Expr C = x.shape[1];
  sym::Expr Mg = wt.shape[1];
  sym::Expr Cg = sym::floorDiv(C, group);
  sym::Expr M = Mg * group;
  DType t = x.dtype, acc = accOf(t);
  // Product tensor (N, M, out..., Cg, k...) reduced over its trailing axes.
  ir::Shape pshape{x.shape[0], M};
  pshape.insert(pshape.end(), outDims.begin(), outDims.end());
  pshape.push_back(Cg);
  for (const sym::Expr &k : kernel)
    pshape.push_back(k);
  ir::Shape xs = x.shape;
  sym::Context *cp = &ctx;
  LTensor prod = c.pointwise(acc, pshape, [=](const Index &i) {
    sym::Expr nn = i[0], m = i[1], cl = i[2 + n];
    sym::Expr g = sym::floorDiv(m, Mg);
    sym::Expr ch = g * Cg + cl;
    Index xi{nn, ch}, wi{ch, sym::mod(m, Mg)};
    VRef valid;
    for (size_t d = 0; d < n; ++d) {
      sym::Expr o = i[2 + d], k = i[3 + n + d];
      sym::Expr num = o + pb[d] - k * dil[d];
      sym::Expr q = sym::floorDiv(num, strides[d]);
      sym::Expr in = xs[2 + d];
      VRef ok = loop::binary(BinaryOp::Ge, loop::symInt(q), ic(0));
      ok = land(ok, loop::binary(BinaryOp::Lt, loop::symInt(q), loop::symInt(in)));
      if (strides[d] != 1)
        ok = land(ok, loop::binary(BinaryOp::Eq, loop::symInt(sym::mod(num, strides[d])), ic(0)));
      valid = valid ? land(valid, ok) : ok;
      xi.push_back(sym::max(sym::min(q, in - 1), cp->constant(0)));
      wi.push_back(k);
    }
    VRef p = mul(loop::cast(x.load(xi), acc), loop::cast(wt.load(wi), acc));
    return loop::select(valid, p, fc(acc, 0));
  });
  std::vector<int> axes;
  for (int d = 2 + (int)n; d < (int)pshape.size(); ++d)
    axes.push_back(d);
  LTensor sum = c.reduce(prod, axes, false, ReduceOp::Sum, acc);
  std::optional<LTensor> bias;
  if (c.has(2)) bias = c.in(2);
  c.out(0, c.pointwise(t, sum.shape, [=](const Index &i) {
    VRef v = sum.load(i);
    if (bias) v = add(v, loop::cast(bias->load({i[1]}), acc));
    return loop::cast(v, t);
  }));
}

} // namespace

VRef gatherAt(Lowerer &low, const LTensor &data, Index idx, int axis, VRef v) {
  if (auto s = loop::asSym(v, data.shape[axis].ctx())) {
    sym::Expr n = data.shape[axis];
    idx[axis] = sym::max(sym::min(*s, n - 1), n.ctx().constant(0));
    return data.load(idx);
  }
  sym::Expr var = low.newVar("g", data.shape[axis]);
  idx[axis] = var;
  VRef clamped = loop::binary(BinaryOp::Max,
                              loop::binary(BinaryOp::Min, v, loop::symInt(data.shape[axis] - 1)),
                              loop::constantInt(DType::Int64, 0));
  return loop::bindIndirect(data.load(idx), var, clamped);
}

void registerModelOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"NegativeLogLikelihoodLoss", 12, lowerNLL},
                        {"SoftmaxCrossEntropyLoss", 12, lowerSCE},
                        {"ConvTranspose", 1, lowerConvTranspose},
                    });
}

} // namespace kiln::lower
