// Model-level ops built from the generic lowering primitives:
//   NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (reductions + indirect gather),
//   Resize / Upsample (separable per-dim interpolation with indirect loads),
//   ConvTranspose (a generated reduction over input channels and kernel taps),
//   RNN / GRU / LSTM (sequence unrolled at compile time).
#include "lower/ops_common.h"
#include "lower/runtime_shape.h"
#include "lower/value_math.h"

#include <cctype>
#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;
using namespace vmath;

DType accOf(DType t) {
  return t == DType::Float64 ? DType::Float64 : DType::Float32;
}

/// Clamps an Int64 value expression into [0, n - 1].
VRef clampIndex(VRef v, sym::Expr n) {
  return loop::binary(BinaryOp::Max, loop::binary(BinaryOp::Min, v, loop::symInt(n - 1)), ic(0));
}

/// data[prefix..., v, suffix...] where v is a run-time Int64 index at `axis` (clamped).
VRef gatherAt(Lowerer &low, const LTensor &data, Index idx, int axis, VRef v) {
  if (auto s = loop::asSym(v, data.shape[axis].ctx())) {
    sym::Expr n = data.shape[axis];
    idx[axis] = sym::max(sym::min(*s, n - 1), n.ctx().constant(0));
    return data.load(idx);
  }
  sym::Expr var = low.newVar("g", data.shape[axis]);
  idx[axis] = var;
  return loop::bindIndirect(data.load(idx), var, clampIndex(v, data.shape[axis]));
}

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

// ---- Resize / Upsample ---------------------------------------------------------------

struct ResizeCfg {
  std::string mode = "nearest"; // nearest | linear | cubic
  std::string coord = "half_pixel";
  std::string nearest = "round_prefer_floor";
  double cubicA = -0.75;
  bool excludeOutside = false;
  double extrapolation = 0;
  bool antialias = false; // Resize-18: linear/cubic downsampling widens the filter by 1/scale
};

/// Cubic convolution weight at distance r >= 0 (Keys, coefficient A; 0 from distance 2).
VRef cubicWeight(VRef r, double a) {
  const DType F = DType::Float64;
  VRef A = fc(F, a), one = fc(F, 1);
  VRef near = add(mul(mul(sub(mul(add(A, fc(F, 2)), r), add(A, fc(F, 3))), r), r), one);
  VRef far = sub(mul(add(mul(sub(mul(A, r), mul(fc(F, 5), A)), r), mul(fc(F, 8), A)), r),
                 mul(fc(F, 4), A));
  return loop::select(lt(r, one), near, loop::select(lt(r, fc(F, 2)), far, fc(F, 0)));
}

/// Resize-18 antialias (linear/cubic) along one axis, as the ONNX reference computes it: the
/// filter (support 1 or 2) is stretched by 1/s, s = min(scale, 1), over the taps base + start
/// .. base + 1 - start (base = ceil(x) - 1, start = floor(-support / s) + 1; edge-clamped), and
/// the weights are normalised to sum 1 (after dropping outside taps with exclude_outside).
/// The tap count follows the scale, so the taps are a reduction axis of that (possibly
/// run-time) extent: two sums (weighted values, weights) and a division.
LTensor antialiasAxis(OpCtx &c, const LTensor &x, int axis, sym::Expr outLen, VRef scale,
                      const ResizeCfg &cfg,
                      const std::function<std::pair<VRef, VRef>(sym::Expr)> &source) {
  const DType F = DType::Float64;
  sym::Context &ctx = c.ctx();
  sym::Expr inLen = x.shape[axis];
  int64_t support = cfg.mode == "linear" ? 1 : 2;
  VRef s = vmin(scale ? scale : divv(symF(outLen, F), symF(inLen, F)), fc(F, 1));
  sym::Expr start;
  if (isConst(s)) {
    start = ctx.constant(static_cast<int64_t>(std::floor(-support / constAsDouble(s))) + 1);
  } else if (!scale) { // s = out / in exactly: start = 1 - ceil(support * in / out)
    sym::Expr ceilRatio =
        sym::floorDiv(inLen * support + outLen - 1, sym::max(outLen, ctx.constant(1)));
    start = sym::min(ctx.constant(1) - ceilRatio, ctx.constant(1 - support));
  } else { // a run-time scale input
    VRef v = loop::cast(
        add(loop::unary(UnaryOp::Floor, divv(fc(F, -(double)support), s)), fc(F, 1)), DType::Int64);
    start = c.runtimeSymbol(v, "antialias_start", -(int64_t(1) << 30), 1 - support);
  }
  ir::Shape taps = x.shape;
  taps[axis] = outLen;
  int rank = x.rank();
  taps.push_back(ctx.constant(2) - start * 2);
  Lowerer *low = &c.lowerer();
  auto weightAndTap = [=](const Index &i, bool value) {
    auto [xori, outside] = source(i[axis]);
    VRef baseF = sub(loop::unary(UnaryOp::Ceil, xori), fc(F, 1));
    VRef ratio = sub(xori, baseF);
    VRef off = loop::symInt(start + i[rank]);
    VRef dist = loop::unary(UnaryOp::Abs, mul(sub(loop::cast(off, F), ratio), s));
    VRef w = support == 1 ? vmax(sub(fc(F, 1), dist), fc(F, 0)) : cubicWeight(dist, cfg.cubicA);
    VRef idx = add(loop::cast(baseF, DType::Int64), off);
    if (cfg.excludeOutside)
      w = loop::select(land(loop::binary(BinaryOp::Ge, idx, ic(0)), lt(idx, loop::symInt(inLen))),
                       w, fc(F, 0));
    if (!value) return w;
    Index out(i.begin(), i.begin() + rank);
    return mul(w, loop::cast(gatherAt(*low, x, out, axis, idx), F));
  };
  LTensor num =
      c.reduce(c.pointwise(F, taps, [=](const Index &i) { return weightAndTap(i, true); }), {rank},
               false, loop::ReduceOp::Sum, F);
  LTensor den =
      c.reduce(c.pointwise(F, taps, [=](const Index &i) { return weightAndTap(i, false); }), {rank},
               false, loop::ReduceOp::Sum, F);
  DType t = x.dtype;
  double extrapolation = cfg.extrapolation;
  return c.pointwise(t, num.shape, [=](const Index &i) {
    VRef v = divv(num.load(i), den.load(i));
    VRef outside = source(i[axis]).second;
    if (outside) v = loop::select(outside, fc(F, extrapolation), v);
    return loop::cast(v, t);
  });
}

/// Resizes one axis of x to `outLen`. A null scale means "outLen / inLen" at run time.
/// scale and roi are float64 values (literals, or loads of run-time inputs).
LTensor resizeAxis(OpCtx &c, const LTensor &x, int axis, sym::Expr outLen, VRef scale,
                   VRef roiStart, VRef roiEnd, const ResizeCfg &cfg) {
  Lowerer *low = &c.lowerer();
  DType t = x.dtype;
  const DType F = DType::Float64;
  ir::Shape shape = x.shape;
  shape[axis] = outLen;
  sym::Expr inLen = x.shape[axis];
  // The source coordinate of output index xo along the axis, and (tf_crop_and_resize) whether
  // it lies outside the input.
  auto source = [=](sym::Expr xoIdx) {
    VRef xo = symF(xoIdx, F);
    VRef inF = symF(inLen, F);
    VRef sc = scale ? scale : divv(symF(outLen, F), inF);
    VRef outW = mul(sc, inF); // the reference's "output_width" (scale * input length)
    VRef one = fc(F, 1), half = fc(F, 0.5);
    VRef outW1 = loop::binary(BinaryOp::Eq, outW, one);
    VRef xori;
    VRef outside;
    const std::string &m = cfg.coord;
    if (m == "align_corners") {
      xori = loop::select(outW1, fc(F, 0), divv(mul(xo, sub(inF, one)), sub(outW, one)));
    } else if (m == "asymmetric") {
      xori = divv(xo, sc);
    } else if (m == "tf_half_pixel_for_nn") {
      xori = divv(add(xo, half), sc);
    } else if (m == "pytorch_half_pixel") {
      xori = loop::select(outW1, fc(F, -0.5), sub(divv(add(xo, half), sc), half));
    } else if (m == "half_pixel") {
      xori = sub(divv(add(xo, half), sc), half);
    } else if (m == "half_pixel_symmetric") { // opset 19: centred when out/scale is not whole
      VRef adjust = divv(symF(outLen, F), outW);
      VRef offset = mul(mul(inF, half), sub(one, adjust));
      xori = add(offset, sub(divv(add(xo, half), sc), half));
    } else if (m == "tf_crop_and_resize") {
      VRef span = sub(roiEnd, roiStart);
      VRef in1 = sub(inF, one);
      xori = loop::select(outW1, divv(mul(span, in1), fc(F, 2)),
                          divv(mul(mul(xo, span), in1), sub(outW, one)));
      xori = add(xori, mul(roiStart, in1));
      outside =
          lor(loop::binary(BinaryOp::Lt, xori, fc(F, 0)), loop::binary(BinaryOp::Gt, xori, in1));
    } else {
      fail("{}: coordinate_transformation_mode '{}' is not supported", c.node.describe(), m);
    }
    return std::pair{xori, outside};
  };
  if (cfg.antialias && cfg.mode != "nearest")
    return antialiasAxis(c, x, axis, outLen, scale, cfg, source);
  return c.pointwise(t, shape, [=](const Index &i) {
    auto [xori, outside] = source(i[axis]);
    VRef one = fc(F, 1), half = fc(F, 0.5);
    // Taps start at base = ceil(x) - 1 with ratio = x - base in (0, 1].
    VRef baseF = sub(loop::unary(UnaryOp::Ceil, xori), one);
    VRef ratio = sub(xori, baseF);
    VRef base = loop::cast(baseF, DType::Int64);
    auto tap = [&](VRef idx) { return loop::cast(gatherAt(*low, x, i, axis, idx), F); };
    VRef val;
    if (cfg.mode == "nearest") {
      VRef up;
      const std::string &nm = cfg.nearest;
      if (nm == "round_prefer_floor")
        up = loop::binary(BinaryOp::Gt, ratio, half);
      else if (nm == "round_prefer_ceil")
        up = loop::binary(BinaryOp::Ge, ratio, half);
      else if (nm == "floor")
        up = loop::binary(BinaryOp::Eq, ratio, one);
      else if (nm == "ceil")
        up = nullptr;
      else
        fail("{}: nearest_mode '{}' is not valid", c.node.describe(), nm);
      VRef idx = up ? loop::select(up, add(base, ic(1)), base) : add(base, ic(1));
      val = tap(idx);
    } else if (cfg.mode == "linear") {
      val = add(mul(sub(one, ratio), tap(base)), mul(ratio, tap(add(base, ic(1)))));
    } else if (cfg.mode == "cubic") {
      VRef A = fc(F, cfg.cubicA);
      auto far = [&](VRef r) { // weight at distance r in [1, 2]
        return sub(mul(add(mul(sub(mul(A, r), mul(fc(F, 5), A)), r), mul(fc(F, 8), A)), r),
                   mul(fc(F, 4), A));
      };
      auto near = [&](VRef r) { // weight at distance r in [0, 1]
        return add(mul(mul(sub(mul(add(A, fc(F, 2)), r), add(A, fc(F, 3))), r), r), one);
      };
      VRef inv = sub(one, ratio);
      VRef w[4] = {far(add(ratio, one)), near(ratio), near(inv), far(add(inv, one))};
      VRef idx[4];
      for (int k = 0; k < 4; ++k)
        idx[k] = add(base, ic(k - 1));
      if (cfg.excludeOutside) {
        VRef tot;
        for (int k = 0; k < 4; ++k) {
          VRef in = land(loop::binary(BinaryOp::Ge, idx[k], ic(0)),
                         loop::binary(BinaryOp::Lt, idx[k], loop::symInt(inLen)));
          w[k] = loop::select(in, w[k], fc(F, 0));
          tot = tot ? add(tot, w[k]) : w[k];
        }
        for (int k = 0; k < 4; ++k)
          w[k] = divv(w[k], tot);
      }
      for (int k = 0; k < 4; ++k) {
        VRef term = mul(w[k], tap(idx[k]));
        val = val ? add(val, term) : term;
      }
    } else {
      fail("{}: mode '{}' is not supported", c.node.describe(), cfg.mode);
    }
    if (outside) val = loop::select(outside, fc(F, cfg.extrapolation), val);
    return loop::cast(val, t);
  });
}

/// floor(in * scale) for a float scale, exact for symbolic `in` (scale as a dyadic rational).
sym::Expr scaledLen(sym::Expr in, double scale) {
  if (in.isConst()) return in.ctx().constant((int64_t)std::floor((double)in->value * scale));
  int k = 0;
  double m = scale;
  while (m != std::floor(m) && k < 40) {
    m *= 2;
    ++k;
  }
  int64_t num = (int64_t)m, den = int64_t(1) << k;
  while (den > 1 && num % 2 == 0) {
    num /= 2;
    den /= 2;
  }
  return sym::floorDiv(in * num, den);
}

/// Resize-18 `axes`: scales/sizes/roi given for those axes only are widened to every axis
/// (scale 1, the input's size, roi [0, 1] elsewhere). `keep_aspect_ratio_policy` not_larger
/// / not_smaller turns sizes into one scale (the min / max of size/input over the axes) and
/// sizes round(scale · input) on those axes (run-time symbols when not known now).
void resizeAxesAndAspect(OpCtx &c, const LTensor &x, std::vector<VRef> &scales,
                         std::vector<sym::Expr> &sizes, std::vector<VRef> &roi) {
  int rank = x.rank();
  std::vector<int> axes;
  for (int64_t a : c.node.attrInts("axes"))
    axes.push_back(c.normAxis(a, rank));
  if (axes.empty())
    for (int d = 0; d < rank; ++d)
      axes.push_back(d);
  size_t k = axes.size();
  if (static_cast<int>(k) != rank) {
    if ((!scales.empty() && scales.size() != k) || (!sizes.empty() && sizes.size() != k) ||
        (!roi.empty() && roi.size() != 2 * k))
      fail("{}: scales/sizes need {} entries and roi {} (one per axis in axes)", c.node.describe(),
           k, 2 * k);
    if (!scales.empty()) {
      std::vector<VRef> full(rank, fc(DType::Float64, 1));
      for (size_t j = 0; j < k; ++j)
        full[axes[j]] = scales[j];
      scales = full;
    }
    if (!sizes.empty()) {
      std::vector<sym::Expr> full(x.shape.begin(), x.shape.end());
      for (size_t j = 0; j < k; ++j)
        full[axes[j]] = sizes[j];
      sizes = full;
    }
    if (!roi.empty()) {
      std::vector<VRef> full(rank, fc(DType::Float64, 0));
      full.insert(full.end(), rank, fc(DType::Float64, 1));
      for (size_t j = 0; j < k; ++j) {
        full[axes[j]] = roi[j];
        full[rank + axes[j]] = roi[k + j];
      }
      roi = full;
    }
  }
  std::string policy = c.node.attrString("keep_aspect_ratio_policy", "stretch");
  if (policy == "stretch" || sizes.empty()) return;
  if (policy != "not_larger" && policy != "not_smaller")
    fail("{}: keep_aspect_ratio_policy '{}' is not stretch, not_larger or not_smaller",
         c.node.describe(), policy);
  bool notLarger = policy == "not_larger";
  auto f64 = [](sym::Expr e) { return loop::cast(loop::symInt(e), DType::Float64); };
  VRef scale;
  for (int d : axes) {
    VRef r = loop::binary(BinaryOp::Div, f64(sizes[d]), f64(x.shape[d]));
    scale = scale ? loop::binary(notLarger ? BinaryOp::Min : BinaryOp::Max, scale, r) : r;
  }
  std::vector<VRef> lens;
  bool known = true;
  for (int d : axes) {
    lens.push_back(
        loop::cast(loop::unary(UnaryOp::Round, loop::binary(BinaryOp::Mul, scale, f64(x.shape[d]))),
                   DType::Int64));
    known = known && isConst(lens.back());
  }
  if (known) {
    for (size_t j = 0; j < axes.size(); ++j)
      sizes[axes[j]] = c.ctx().constant(lens[j]->ival);
    return;
  }
  // One symbol kernel for all the sizes (element j: axis axes[j]).
  LTensor all = c.pointwise(DType::Int64, {c.ctx().constant(static_cast<int64_t>(lens.size()))},
                            [lens](const Index &i) {
                              VRef v = lens.back();
                              for (size_t j = lens.size() - 1; j-- > 0;)
                                v = loop::select(loop::binary(BinaryOp::Eq, loop::symInt(i[0]),
                                                              loop::constantInt(DType::Int64, j)),
                                                 lens[j], v);
                              return v;
                            });
  std::vector<sym::Expr> syms = c.runtimeSymbols(all, "resize_size", 0, INT32_MAX);
  for (size_t j = 0; j < axes.size(); ++j)
    sizes[axes[j]] = syms[j];
}

void lowerResize(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "Resize input");
  int rank = x.rank();
  bool legacy = c.node.op == "Upsample" || c.node.opset < 11;
  ResizeCfg cfg;
  cfg.mode = c.node.attrString("mode", "nearest");
  if (cfg.mode == "bilinear" || cfg.mode == "trilinear") cfg.mode = "linear";
  if (legacy) {
    cfg.coord = "asymmetric";
    cfg.nearest = "floor";
  } else {
    cfg.coord = c.node.attrString("coordinate_transformation_mode", "half_pixel");
    cfg.nearest = c.node.attrString("nearest_mode", "round_prefer_floor");
    cfg.cubicA = c.node.attrFloat("cubic_coeff_a", -0.75f);
    cfg.excludeOutside = c.node.attrInt("exclude_outside", 0) != 0;
    cfg.extrapolation = c.node.attrFloat("extrapolation_value", 0.f);
    cfg.antialias = c.node.opset >= 18 && c.node.attrInt("antialias", 0) != 0;
  }
  // scales and roi as float64 values: literals when known, else loads of the input.
  std::vector<VRef> scales, roi;
  std::vector<sym::Expr> sizes;
  bool runtimeScales = false;
  auto doubles = [&](size_t i) {
    std::vector<VRef> r;
    if (!c.has(i)) return r;
    if (const ir::TensorData *d = c.constIn(i)) {
      for (int64_t k = 0; k < d->numel(); ++k)
        r.push_back(fc(DType::Float64, d->getDouble(k)));
      return r;
    }
    LTensor t = c.in(i);
    if (t.rank() != 1) fail("{}: input {} must be 1-D", c.node.describe(), i);
    int64_t n = c.requireStatic(t.shape[0], "the length of scales/roi");
    for (int64_t k = 0; k < n; ++k)
      r.push_back(loop::cast(t.load({c.ctx().constant(k)}), DType::Float64));
    if ((i != 1 || legacy) && n > 0) runtimeScales = true;
    return r;
  };
  if (c.node.op == "Upsample" && c.node.opset < 9) {
    for (float f : c.node.attrFloats("scales"))
      scales.push_back(fc(DType::Float64, f));
  } else if (legacy) {
    scales = doubles(1);
  } else {
    if (cfg.coord == "tf_crop_and_resize") roi = doubles(1);
    scales = doubles(2);
    if (scales.empty() && c.has(3)) sizes = c.requireSymIn(3, "sizes", 1);
  }
  if (scales.empty() && sizes.empty())
    fail("{}: one of scales or sizes is required", c.node.describe());
  resizeAxesAndAspect(c, x, scales, sizes, roi);
  if ((!scales.empty() && (int)scales.size() != rank) ||
      (!sizes.empty() && (int)sizes.size() != rank))
    fail("{}: scales/sizes need {} entries", c.node.describe(), rank);
  if (!roi.empty() && (int)roi.size() != 2 * rank)
    fail("{}: roi needs {} entries", c.node.describe(), 2 * rank);
  std::vector<sym::Expr> outLens(rank);
  if (runtimeScales) {
    // Output sizes floor(in * scale) from run-time scales: one symbol kernel.
    std::vector<VRef> lens;
    for (int d = 0; d < rank; ++d)
      lens.push_back(
          loop::cast(loop::unary(UnaryOp::Floor, mul(symF(x.shape[d], DType::Float64), scales[d])),
                     DType::Int64));
    outLens = runtimeShape(c, lens, "out_dim");
  }
  LTensor cur = x;
  std::vector<int> todo;
  for (int d = 0; d < rank; ++d) {
    sym::Expr in = x.shape[d];
    bool constScale = !scales.empty() && isConst(scales[d]);
    if (!sizes.empty())
      outLens[d] = sizes[d];
    else if (constScale)
      outLens[d] = scaledLen(in, constAsDouble(scales[d]));
    bool identity =
        cfg.coord != "tf_crop_and_resize" &&
        (scales.empty() ? sizes[d] == in : constScale && constAsDouble(scales[d]) == 1.0);
    if (!identity) todo.push_back(d);
  }
  for (size_t k = 0; k < todo.size(); ++k) {
    int d = todo[k];
    VRef s = scales.empty() ? nullptr : scales[d];
    VRef r0 = roi.empty() ? fc(DType::Float64, 0) : roi[d];
    VRef r1 = roi.empty() ? fc(DType::Float64, 1) : roi[rank + d];
    cur = resizeAxis(c, cur, d, outLens[d], s, r0, r1, cfg);
    if (k + 1 < todo.size()) cur = c.realize(cur);
  }
  c.out(0, cur);
}

// ---- RNN / GRU / LSTM ------------------------------------------------------------------

struct Act {
  std::string name;
  double alpha = 0, beta = 0;
};

VRef applyAct(const Act &a, VRef v, DType t) {
  const std::string &n = a.name;
  if (n == "Tanh") return loop::unary(UnaryOp::Tanh, v);
  if (n == "Sigmoid") return loop::unary(UnaryOp::Sigmoid, v);
  if (n == "Relu") return loop::binary(BinaryOp::Max, v, fc(t, 0));
  if (n == "LeakyRelu")
    return loop::select(loop::binary(BinaryOp::Lt, v, fc(t, 0)), mul(v, fc(t, a.alpha)), v);
  if (n == "HardSigmoid")
    return loop::binary(
        BinaryOp::Max, fc(t, 0),
        loop::binary(BinaryOp::Min, fc(t, 1), add(mul(v, fc(t, a.alpha)), fc(t, a.beta))));
  if (n == "Softsign") return divv(v, add(fc(t, 1), loop::unary(UnaryOp::Abs, v)));
  if (n == "Softplus")
    return loop::unary(UnaryOp::Log, add(fc(t, 1), loop::unary(UnaryOp::Exp, v)));
  if (n == "Elu")
    return loop::select(loop::binary(BinaryOp::Lt, v, fc(t, 0)),
                        mul(fc(t, a.alpha), sub(loop::unary(UnaryOp::Exp, v), fc(t, 1))), v);
  if (n == "Affine") return add(mul(v, fc(t, a.alpha)), fc(t, a.beta));
  if (n == "ScaledTanh")
    return mul(fc(t, a.alpha), loop::unary(UnaryOp::Tanh, mul(v, fc(t, a.beta))));
  if (n == "ThresholdedRelu")
    return loop::select(loop::binary(BinaryOp::Gt, v, fc(t, a.alpha)), v, fc(t, 0));
  fail("activation '{}' is not supported by kiln", n);
}

/// Activations per direction (numDefault each), from the attribute or defaults.
std::vector<Act> rnnActs(OpCtx &c, std::vector<std::string> dflt, int dirs) {
  std::vector<Act> r;
  std::vector<std::string> names;
  if (c.node.hasAttr("activations")) names = c.node.attrs.at("activations").strings;
  std::vector<float> al = c.node.attrFloats("activation_alpha"),
                     be = c.node.attrFloats("activation_beta");
  size_t ai = 0, bi = 0;
  for (int d = 0; d < dirs; ++d)
    for (size_t k = 0; k < dflt.size(); ++k) {
      Act a;
      size_t pos = d * dflt.size() + k;
      a.name = pos < names.size() ? names[pos] : dflt[k];
      // Canonical capitalisation of ONNX names (case-insensitive in practice).
      std::string low;
      for (char ch : a.name)
        low += (char)std::tolower((unsigned char)ch);
      for (const char *n : {"Tanh", "Sigmoid", "Relu", "LeakyRelu", "HardSigmoid", "Softsign",
                            "Softplus", "Elu", "Affine", "ScaledTanh", "ThresholdedRelu"}) {
        std::string nl;
        for (const char *p = n; *p; ++p)
          nl += (char)std::tolower((unsigned char)*p);
        if (nl == low) a.name = n;
      }
      double da = 0, db = 0;
      if (a.name == "LeakyRelu") da = 0.01;
      if (a.name == "HardSigmoid") {
        da = 0.2;
        db = 0.5;
      }
      if (a.name == "Elu" || a.name == "ThresholdedRelu") da = 1.0;
      if (a.name == "Affine" || a.name == "ScaledTanh") {
        da = 1.0;
        db = 0.0;
      }
      bool usesA = a.name == "LeakyRelu" || a.name == "HardSigmoid" || a.name == "Elu" ||
                   a.name == "Affine" || a.name == "ScaledTanh" || a.name == "ThresholdedRelu";
      bool usesB = a.name == "HardSigmoid" || a.name == "Affine" || a.name == "ScaledTanh";
      a.alpha = usesA && ai < al.size() ? al[ai++] : da;
      a.beta = usesB && bi < be.size() ? be[bi++] : db;
      r.push_back(a);
    }
  return r;
}

void lowerRecurrent(OpCtx &c) {
  const std::string op = c.node.op;
  int G = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1;
  LTensor X = c.in(0), W = c.in(1), R = c.in(2);
  requireFloat(c, X, "recurrent input");
  sym::Context *cp = &c.ctx();
  int layout = (int)c.node.attrInt("layout", 0);
  std::string direction = c.node.attrString("direction", "forward");
  int dirs = direction == "bidirectional" ? 2 : 1;
  if (c.node.attrInt("input_forget", 0)) c.unsupported("LSTM input_forget=1");
  if (X.rank() != 3 || W.rank() != 3 || R.rank() != 3)
    fail("{}: X, W and R must have rank 3, got {}, {} and {}", c.node.describe(), X.rank(),
         W.rank(), R.rank());
  bool hasClip = c.node.hasAttr("clip");
  double clip = c.node.attrFloat("clip", 0.f);
  int64_t lbr = c.node.attrInt("linear_before_reset", 0);
  sym::Expr seqE = layout ? X.shape[1] : X.shape[0];
  sym::Expr batch = layout ? X.shape[0] : X.shape[1];
  sym::Expr inSize = X.shape[2];
  int64_t seq = c.requireStatic(seqE, "the sequence length (kiln unrolls the recurrence)");
  int64_t H = c.requireStatic(R.shape[2], "hidden_size");
  sym::Expr Hs = cp->constant(H), GH = cp->constant(G * H);
  DType t = X.dtype, acc = accOf(t);
  std::vector<std::string> dflt = op == "LSTM" ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
                                  : op == "GRU" ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                : std::vector<std::string>{"Tanh"};
  std::vector<Act> acts = rnnActs(c, dflt, dirs);
  std::optional<LTensor> B, seqLens, h0, c0, P;
  if (c.has(3)) B = c.in(3);
  if (c.has(4)) seqLens = c.in(4);
  if (c.has(5)) h0 = c.in(5);
  if (op == "LSTM" && c.has(6)) c0 = c.in(6);
  if (op == "LSTM" && c.has(7)) P = c.in(7);
  auto xAt = [=](sym::Expr tt, sym::Expr b, sym::Expr i) {
    return loop::cast(layout ? X.load({b, tt, i}) : X.load({tt, b, i}), acc);
  };
  auto bAt = [=](int d, sym::Expr k) -> VRef { // k in [0, 2*G*H)
    if (!B) return fc(acc, 0);
    return loop::cast(B->load({cp->constant(d), k}), acc);
  };
  auto stateInit = [&, cp](const std::optional<LTensor> &s, int d) {
    return c.pointwise(acc, {batch, Hs}, [=](const Index &i) -> VRef {
      if (!s) return fc(acc, 0);
      Index si = layout ? Index{i[0], cp->constant(d), i[1]} : Index{cp->constant(d), i[0], i[1]};
      return loop::cast(s->load(si), acc);
    });
  };
  auto clipV = [=](VRef v) {
    if (!hasClip) return v;
    return loop::binary(BinaryOp::Max, fc(acc, -clip),
                        loop::binary(BinaryOp::Min, fc(acc, clip), v));
  };
  // [batch, GH] = sum_j A[b, j] * M[d, gh, j]  (A given by a loader over [batch, K]).
  auto matvec = [&](std::function<VRef(sym::Expr, sym::Expr)> a, const LTensor &M, int d,
                    sym::Expr K) {
    LTensor p = c.pointwise(acc, {batch, GH, K}, [=](const Index &i) {
      return mul(a(i[0], i[2]), loop::cast(M.load({cp->constant(d), i[1], i[2]}), acc));
    });
    return c.reduce(p, {2}, false, ReduceOp::Sum, acc);
  };
  std::vector<std::vector<LTensor>> Ys(dirs);
  std::vector<LTensor> Hlast(dirs), Clast(dirs);
  for (int d = 0; d < dirs; ++d) {
    bool rev = direction == "reverse" || d == 1;
    const Act *A = &acts[d * dflt.size()];
    // X * W^T for every step at once: [seq, batch, GH].
    LTensor xp = c.pointwise(acc, {seqE, batch, GH, inSize}, [=](const Index &i) {
      return mul(xAt(i[0], i[1], i[3]), loop::cast(W.load({cp->constant(d), i[2], i[3]}), acc));
    });
    LTensor XW = c.reduce(xp, {3}, false, ReduceOp::Sum, acc);
    LTensor Ht = c.realize(stateInit(h0, d));
    LTensor Ct = c.realize(stateInit(c0, d));
    Ys[d].resize(seq);
    for (int64_t s = 0; s < seq; ++s) {
      int64_t tt = rev ? seq - 1 - s : s;
      sym::Expr tE = cp->constant(tt);
      LTensor Hprev = Ht, Cprev = Ct;
      LTensor HR = matvec([=](sym::Expr b, sym::Expr j) { return Hprev.load({b, j}); }, R, d, Hs);
      // gate pre-activation k (gate index g, unit h) without the recurrent part
      auto xg = [=](sym::Expr b, int g, sym::Expr h) {
        sym::Expr k = h + g * H;
        return add(XW.load({tE, b, k}), bAt(d, k));
      };
      auto rg = [=](sym::Expr b, int g, sym::Expr h) {
        sym::Expr k = h + g * H;
        return add(HR.load({b, k}), bAt(d, k + G * H));
      };
      auto validAt = [=](sym::Expr b) -> VRef {
        if (!seqLens) return nullptr;
        return loop::binary(BinaryOp::Lt, ic(tt), loop::cast(seqLens->load({b}), DType::Int64));
      };
      LTensor Hn, Cn;
      if (op == "RNN") {
        Hn = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
          return applyAct(A[0], clipV(add(xg(i[0], 0, i[1]), rg(i[0], 0, i[1]))), acc);
        });
      } else if (op == "GRU") {
        auto zr = [=](sym::Expr b, int g, sym::Expr h) {
          return applyAct(A[0], clipV(add(xg(b, g, h), rg(b, g, h))), acc);
        };
        LTensor hh;
        if (lbr) {
          hh = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
            return applyAct(
                A[1], clipV(add(xg(i[0], 2, i[1]), mul(zr(i[0], 1, i[1]), rg(i[0], 2, i[1])))),
                acc);
          });
        } else {
          LTensor rH = c.realize(c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
            return mul(zr(i[0], 1, i[1]), Hprev.load(i));
          }));
          // (r * H) R_h^T: only the h-gate rows of R.
          LTensor p = c.pointwise(acc, {batch, Hs, Hs}, [=](const Index &i) {
            return mul(rH.load({i[0], i[2]}),
                       loop::cast(R.load({cp->constant(d), i[1] + 2 * H, i[2]}), acc));
          });
          LTensor rr = c.reduce(p, {2}, false, ReduceOp::Sum, acc);
          hh = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
            VRef v = add(add(xg(i[0], 2, i[1]), rr.load(i)), bAt(d, i[1] + (2 * H + G * H)));
            return applyAct(A[1], clipV(v), acc);
          });
        }
        Hn = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
          VRef z = zr(i[0], 0, i[1]);
          return add(mul(sub(fc(acc, 1), z), hh.load(i)), mul(z, Hprev.load(i)));
        });
      } else { // LSTM, gates i, o, f, c
        auto pAt = [=](int k, sym::Expr h) -> VRef {
          if (!P) return fc(acc, 0);
          return loop::cast(P->load({cp->constant(d), h + k * H}), acc);
        };
        auto pre = [=](sym::Expr b, int g, sym::Expr h) { return add(xg(b, g, h), rg(b, g, h)); };
        Cn = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
          VRef cp0 = Cprev.load(i);
          VRef ig = applyAct(A[0], clipV(add(pre(i[0], 0, i[1]), mul(pAt(0, i[1]), cp0))), acc);
          VRef fg = applyAct(A[0], clipV(add(pre(i[0], 2, i[1]), mul(pAt(2, i[1]), cp0))), acc);
          VRef cg = applyAct(A[1], clipV(pre(i[0], 3, i[1])), acc);
          VRef v = add(mul(fg, cp0), mul(ig, cg));
          if (VRef ok = validAt(i[0])) v = loop::select(ok, v, cp0);
          return v;
        });
        Cn = c.realize(Cn);
        Hn = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
          VRef cn = Cn.load(i);
          VRef og = applyAct(A[0], clipV(add(pre(i[0], 1, i[1]), mul(pAt(1, i[1]), cn))), acc);
          return mul(og, applyAct(A[2], cn, acc));
        });
      }
      LTensor HnRaw = Hn;
      Hn = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
        VRef v = HnRaw.load(i);
        if (VRef ok = validAt(i[0])) v = loop::select(ok, v, Hprev.load(i));
        return v;
      });
      Ht = c.realize(Hn);
      if (op == "LSTM") Ct = Cn;
      LTensor Hcur = Ht;
      Ys[d][tt] = c.pointwise(acc, {batch, Hs}, [=](const Index &i) {
        VRef v = Hcur.load(i);
        if (VRef ok = validAt(i[0])) v = loop::select(ok, v, fc(acc, 0));
        return v;
      });
    }
    Hlast[d] = Ht;
    Clast[d] = Ct;
  }
  // Outputs.
  ir::Shape yShape = layout ? ir::Shape{batch, seqE, cp->constant(dirs), Hs}
                            : ir::Shape{seqE, cp->constant(dirs), batch, Hs};
  c.out(0, c.pointwise(t, yShape, [=](const Index &i) {
    sym::Expr tI = layout ? i[1] : i[0], dI = layout ? i[2] : i[1], b = layout ? i[0] : i[2];
    Index bi{b, i[3]};
    VRef r;
    for (int d = 0; d < dirs; ++d)
      for (int64_t s = 0; s < seq; ++s) {
        VRef v = Ys[d][s].load(bi);
        if (!r) {
          r = v;
          continue;
        }
        VRef cond = land(loop::binary(BinaryOp::Eq, loop::symInt(tI), ic(s)),
                         loop::binary(BinaryOp::Eq, loop::symInt(dI), ic(d)));
        r = loop::select(cond, v, r);
      }
    return loop::cast(r, t);
  }));
  auto stateOut = [&](const std::vector<LTensor> &st) {
    ir::Shape sh = layout ? ir::Shape{batch, cp->constant(dirs), Hs}
                          : ir::Shape{cp->constant(dirs), batch, Hs};
    return c.pointwise(t, sh, [=](const Index &i) {
      sym::Expr dI = layout ? i[1] : i[0], b = layout ? i[0] : i[1];
      VRef r = st[0].load({b, i[2]});
      for (int d = 1; d < dirs; ++d)
        r = loop::select(loop::binary(BinaryOp::Eq, loop::symInt(dI), ic(d)), st[d].load({b, i[2]}),
                         r);
      return loop::cast(r, t);
    });
  };
  c.out(1, stateOut(Hlast));
  if (op == "LSTM") c.out(2, stateOut(Clast));
}

} // namespace

void registerModelOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"NegativeLogLikelihoodLoss", 12, lowerNLL},
                        {"SoftmaxCrossEntropyLoss", 12, lowerSCE},
                        {"ConvTranspose", 1, lowerConvTranspose},
                        {"Resize", 10, lowerResize},
                        {"Upsample", 7, lowerResize},
                        {"RNN", 7, lowerRecurrent},
                        {"GRU", 7, lowerRecurrent},
                        {"LSTM", 7, lowerRecurrent},
                    });
}

} // namespace kiln::lower
