// Resize / Upsample: separable per-axis interpolation (nearest, linear, cubic) with indirect
// loads, every coordinate_transformation_mode, Resize-18 axes / keep_aspect_ratio_policy and
// antialias (the widened filter's taps as a reduction axis). Scales, sizes and roi may be
// run-time inputs.
#include "lower/gather.h"
#include "lower/ops_common.h"
#include "lower/runtime_shape.h"
#include "lower/value_math.h"

#include <cmath>

namespace kiln::lower {

namespace {

using namespace vmath;

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

} // namespace

void registerResizeOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Resize", 10, lowerResize},
                        {"Upsample", 7, lowerResize},
                    });
}

} // namespace kiln::lower
