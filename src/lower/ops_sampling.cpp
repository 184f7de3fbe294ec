// Sampling ops:
//   GridSample (interpolation at per-output grid coordinates: gathers at run-time indices),
//   RoiAlign (bilinear samples per region on a fixed sampling grid, averaged or maxed),
//   MaxUnpool (a flat scatter into zeros through the scatter shim, then zero padding).
// Semantics follow the ONNX reference implementations (which mirror onnxruntime).
#include "lower/ops_common.h"
#include "lower/value_math.h"

#include "kiln/shim.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;
using namespace vmath;

VRef zeroOf(DType t) {
  return isFloat(t) ? loop::constant(t, 0) : loop::constantInt(t, 0);
}

/// x at `at`, except that each axis listed in `dyn` takes a run-time Int64 index (clamped
/// into range; callers mask out-of-range taps themselves where the op gives them a value).
VRef gather(Lowerer &low, const LTensor &x, Index at,
            const std::vector<std::pair<int, VRef>> &dyn) {
  std::vector<std::pair<sym::Expr, VRef>> binds;
  for (auto &[axis, v] : dyn) {
    sym::Expr n = x.shape[axis];
    VRef cl = vmax(vmin(v, loop::symInt(n - 1)), ic(0));
    if (auto s = loop::asSym(cl, n.ctx())) {
      at[axis] = *s;
      continue;
    }
    sym::Expr var = low.newVar("g", n);
    at[axis] = var;
    binds.push_back({var, cl});
  }
  VRef r = x.load(at);
  for (auto &[var, v] : binds)
    r = loop::bindIndirect(r, var, v);
  return r;
}

// ---- GridSample ----------------------------------------------------------------------

/// Folds x into [lo, hi] by reflecting at the borders as often as needed.
VRef reflect(VRef x, VRef lo, VRef hi, DType F) {
  VRef rng = sub(hi, lo);
  // dx >= 0 past a border: n whole spans and a remainder r; an odd n ends at the far border.
  auto fold = [&](VRef dx, VRef nearB, VRef farB, bool fromLow) {
    VRef n = loop::unary(UnaryOp::Floor, divv(dx, rng));
    VRef r = sub(dx, mul(n, rng));
    VRef half = loop::unary(UnaryOp::Floor, mul(n, fc(F, 0.5)));
    VRef odd = gt(sub(n, mul(half, fc(F, 2))), fc(F, 0.5));
    VRef even = fromLow ? add(nearB, r) : sub(nearB, r);
    VRef oddV = fromLow ? sub(farB, r) : add(farB, r);
    return loop::select(odd, oddV, even);
  };
  VRef below = fold(sub(lo, x), lo, hi, true);
  VRef above = fold(sub(x, hi), hi, lo, false);
  VRef r = loop::select(lt(x, lo), below, loop::select(gt(x, hi), above, x));
  return loop::select(gt(rng, fc(F, 0)), r, lo); // a one-pixel axis has nowhere to fold
}

/// Keys' cubic convolution weights (a = -0.75) for taps at -1, 0, 1, 2 from floor(x),
/// where t = x - floor(x) in [0, 1).
std::vector<VRef> cubicWeights(VRef t, DType F) {
  VRef A = fc(F, -0.75), one = fc(F, 1), two = fc(F, 2);
  auto far = [&](VRef r) { // distance in [1, 2]
    return sub(mul(add(mul(sub(mul(A, r), mul(fc(F, 5), A)), r), mul(fc(F, 8), A)), r),
               mul(fc(F, 4), A));
  };
  auto near = [&](VRef r) { // distance in [0, 1]
    return add(mul(mul(sub(mul(add(A, two), r), add(A, fc(F, 3))), r), r), one);
  };
  return {far(add(t, one)), near(t), near(sub(one, t)), far(sub(two, t))};
}

void lowerGridSample(OpCtx &c) {
  LTensor x = c.in(0), grid = c.in(1);
  int k = x.rank() - 2;
  if (k < 1) fail("{}: input rank {} has no spatial dims", c.node.describe(), x.rank());
  if (grid.rank() != k + 2)
    fail("{}: grid rank {} does not match input rank {}", c.node.describe(), grid.rank(), x.rank());
  sym::Context *ctx = &c.ctx();
  c.guardEqual(grid.shape[0], x.shape[0], "grid and input batch sizes differ");
  c.guardEqual(grid.shape[k + 1], ctx->constant(k),
               "grid's last dim must equal the number of spatial dims");
  std::string mode = c.node.attrString("mode", c.node.opset < 20 ? "bilinear" : "linear");
  if (mode == "bilinear") mode = "linear";
  if (mode == "bicubic") mode = "cubic";
  if (mode != "linear" && mode != "cubic" && mode != "nearest")
    fail("{}: mode '{}' is not valid", c.node.describe(), mode);
  std::string pad = c.node.attrString("padding_mode", "zeros");
  if (pad != "zeros" && pad != "border" && pad != "reflection")
    fail("{}: padding_mode '{}' is not valid", c.node.describe(), pad);
  bool align = c.node.attrInt("align_corners", 0) != 0;
  requireFloat(c, grid, "GridSample grid");
  bool nearest = mode == "nearest";
  if (!nearest) requireFloat(c, x, "GridSample input (interpolating modes)");
  DType t = x.dtype;
  DType F = t == DType::Float64 || grid.dtype == DType::Float64 ? DType::Float64 : DType::Float32;
  LTensor src = x.cheap ? x : c.realize(x);
  ir::Shape xs = x.shape;
  ir::Shape outShape{x.shape[0], x.shape[1]};
  outShape.insert(outShape.end(), grid.shape.begin() + 1, grid.shape.begin() + 1 + k);
  Lowerer *low = &c.lowerer();
  c.out(0, c.pointwise(t, outShape, [=](const Index &i) {
    VRef one = fc(F, 1), two = fc(F, 2), zero = fc(F, 0);
    std::vector<VRef> pos(k), lo(k), hi(k);
    for (int d = 0; d < k; ++d) {
      // The grid's last axis lists coordinates innermost dim first (x, y, ...).
      Index gi(i.begin() + 1, i.end());
      gi[0] = i[0];
      gi.push_back(ctx->constant(k - 1 - d));
      VRef g = loop::cast(grid.load(gi), F);
      VRef L = symF(xs[2 + d], F);
      lo[d] = align ? zero : fc(F, -0.5);
      hi[d] = align ? sub(L, one) : sub(L, fc(F, 0.5));
      VRef p = align ? mul(divv(add(g, one), two), sub(L, one))
                     : divv(sub(mul(add(g, one), L), one), two);
      // Half to even in every rank, as ONNX's reference and test data (v1.21) do; PyTorch's
      // own 3-D sampler rounds half away from zero.
      if (nearest) p = loop::unary(UnaryOp::Round, p);
      if (pad == "border") {
        VRef out = lor(lt(p, lo[d]), gt(p, hi[d]));
        p = loop::select(out, vmax(vmin(p, sub(L, one)), zero), p);
      } else if (pad == "reflection") {
        p = reflect(p, lo[d], hi[d], F);
      }
      pos[d] = p;
    }
    // Taps per dim: (Int64 index, weight; null weight = 1).
    std::vector<std::vector<std::pair<VRef, VRef>>> taps(k);
    for (int d = 0; d < k; ++d) {
      if (nearest) {
        taps[d] = {{loop::cast(pos[d], DType::Int64), nullptr}};
        continue;
      }
      VRef f = loop::unary(UnaryOp::Floor, pos[d]);
      VRef frac = sub(pos[d], f);
      VRef base = loop::cast(f, DType::Int64);
      if (mode == "linear") {
        taps[d] = {{base, sub(one, frac)}, {add(base, ic(1)), frac}};
      } else {
        std::vector<VRef> w = cubicWeights(frac, F);
        for (int j = 0; j < 4; ++j)
          taps[d].push_back({add(base, ic(j - 1)), w[j]});
      }
    }
    // Sum over the tensor product of the per-dim taps.
    DType vt = nearest ? t : F;
    VRef acc;
    std::vector<size_t> sel(k, 0);
    while (true) {
      VRef w, valid;
      Index at = i;
      std::vector<std::pair<int, VRef>> dyn;
      for (int d = 0; d < k; ++d) {
        auto [iv, wt] = taps[d][sel[d]];
        if (pad == "zeros")
          valid = land(
              valid, land(loop::binary(BinaryOp::Ge, iv, ic(0)), lt(iv, loop::symInt(xs[2 + d]))));
        else if (pad == "reflection")
          iv = loop::cast(reflect(loop::cast(iv, F), lo[d], hi[d], F), DType::Int64);
        dyn.push_back({2 + d, iv});
        if (wt) w = w ? mul(w, wt) : wt;
      }
      VRef v = loop::cast(gather(*low, src, at, dyn), vt);
      if (valid) v = loop::select(valid, v, zeroOf(vt));
      VRef term = w ? mul(w, v) : v;
      acc = acc ? add(acc, term) : term;
      int d = k - 1;
      while (d >= 0 && ++sel[d] == taps[d].size())
        sel[d--] = 0;
      if (d < 0) break;
    }
    return loop::cast(acc, t);
  }));
}

// ---- RoiAlign ------------------------------------------------------------------------

void lowerRoiAlign(OpCtx &c) {
  LTensor x = c.in(0);
  // Every sample of a RoI reads its box and batch index: realized once, not recomputed per
  // channel and sample (in Faster R-CNN they are the end of the proposal decoding).
  LTensor rois = c.in(1).cheap ? c.in(1) : c.realize(c.in(1));
  LTensor bidx = c.in(2).cheap ? c.in(2) : c.realize(c.in(2));
  requireFloat(c, x, "RoiAlign input");
  requireFloat(c, rois, "RoiAlign rois");
  if (x.rank() != 4)
    fail("{}: input must be 4-D (N, C, H, W), got rank {}", c.node.describe(), x.rank());
  if (rois.rank() != 2 || bidx.rank() != 1)
    fail("{}: rois must be 2-D and batch_indices 1-D", c.node.describe());
  sym::Context *ctx = &c.ctx();
  c.guardEqual(rois.shape[1], ctx->constant(4), "rois must have 4 columns");
  c.guardEqual(bidx.shape[0], rois.shape[0], "batch_indices and rois disagree on the RoI count");
  std::string mode = c.node.attrString("mode", "avg");
  if (mode != "avg" && mode != "max") fail("{}: mode '{}' is not valid", c.node.describe(), mode);
  bool avg = mode == "avg";
  int64_t oh = c.node.attrInt("output_height", 1), ow = c.node.attrInt("output_width", 1);
  int64_t sr = c.node.attrInt("sampling_ratio", 0);
  if (oh < 1 || ow < 1) fail("{}: output_height/output_width must be positive", c.node.describe());
  if (sr <= 0)
    c.unsupported("RoiAlign with sampling_ratio 0 (an adaptive, data-dependent number of "
                  "samples per bin)");
  double scale = c.node.attrFloat("spatial_scale", 1.0f);
  std::string ctm = c.node.opset >= 16
                        ? c.node.attrString("coordinate_transformation_mode", "half_pixel")
                        : "output_half_pixel";
  if (ctm != "half_pixel" && ctm != "output_half_pixel")
    fail("{}: coordinate_transformation_mode '{}' is not valid", c.node.describe(), ctm);
  bool half = ctm == "half_pixel";
  DType t = x.dtype, F = accOf(t);
  LTensor src = x.cheap ? x : c.realize(x);
  ir::Shape xs = x.shape;
  Lowerer *low = &c.lowerer();
  // Samples [R, C, oh, ow, sr, sr], reduced over the sampling grid.
  ir::Shape sampShape{rois.shape[0],     x.shape[1],        ctx->constant(oh),
                      ctx->constant(ow), ctx->constant(sr), ctx->constant(sr)};
  LTensor samples = c.pointwise(F, sampShape, [=](const Index &i) {
    VRef one = fc(F, 1), zero = fc(F, 0);
    auto roi = [&](int64_t col) {
      VRef v = mul(loop::cast(rois.load({i[0], ctx->constant(col)}), F), fc(F, scale));
      return half ? sub(v, fc(F, 0.5)) : v;
    };
    VRef sw = roi(0), sh = roi(1), rw = sub(roi(2), sw), rh = sub(roi(3), sh);
    if (!half) { // malformed RoIs are forced to 1x1
      rw = vmax(rw, one);
      rh = vmax(rh, one);
    }
    VRef bh = divv(rh, fc(F, (double)oh)), bw = divv(rw, fc(F, (double)ow));
    auto coord = [&](VRef start, VRef bin, sym::Expr p, sym::Expr s) {
      VRef frac = divv(mul(add(symF(s, F), fc(F, 0.5)), bin), fc(F, (double)sr));
      return add(add(start, mul(symF(p, F), bin)), frac);
    };
    VRef y = coord(sh, bh, i[2], i[4]), xx = coord(sw, bw, i[3], i[5]);
    VRef outside = lor(lor(lt(y, fc(F, -1)), gt(y, symF(xs[2], F))),
                       lor(lt(xx, fc(F, -1)), gt(xx, symF(xs[3], F))));
    // Per axis: low and high tap and the fraction toward high (clamped at the far edge).
    auto axis = [&](VRef p, sym::Expr n) {
      p = vmax(p, zero);
      VRef lowI = loop::cast(p, DType::Int64), last = loop::symInt(n - 1);
      VRef atEnd = loop::binary(BinaryOp::Ge, lowI, last);
      VRef l = loop::select(atEnd, last, lowI);
      VRef h = loop::select(atEnd, last, add(lowI, ic(1)));
      VRef frac = loop::select(atEnd, zero, sub(p, loop::cast(lowI, F)));
      return std::tuple{l, h, frac};
    };
    auto [yl, yh, ly] = axis(y, xs[2]);
    auto [xl, xh, lx] = axis(xx, xs[3]);
    VRef hy = sub(one, ly), hx = sub(one, lx);
    VRef b = loop::cast(bidx.load({i[0]}), DType::Int64);
    auto px = [&](VRef yi, VRef xi, VRef w) {
      Index at{i[0], i[1], i[0], i[0]};
      return mul(w, loop::cast(gather(*low, src, at, {{0, b}, {2, yi}, {3, xi}}), F));
    };
    VRef v1 = px(yl, xl, mul(hy, hx)), v2 = px(yl, xh, mul(hy, lx));
    VRef v3 = px(yh, xl, mul(ly, hx)), v4 = px(yh, xh, mul(ly, lx));
    VRef v = avg ? add(add(add(v1, v2), v3), v4) : vmax(vmax(vmax(v1, v2), v3), v4);
    return loop::select(outside, zero, v);
  });
  LTensor red = c.reduce(samples, {4, 5}, false, avg ? ReduceOp::Sum : ReduceOp::Max, F);
  double count = (double)(sr * sr);
  c.out(0, c.pointwise(t, red.shape, [=](const Index &i) {
    VRef v = red.load(i);
    if (avg) v = divv(v, fc(F, count));
    return loop::cast(v, t);
  }));
}

// ---- MaxUnpool -----------------------------------------------------------------------

void lowerMaxUnpool(OpCtx &c) {
  LTensor x = c.in(0), ind = c.in(1);
  int spatial = x.rank() - 2;
  if (spatial < 1) fail("{}: input rank {} has no spatial dims", c.node.describe(), x.rank());
  if (ind.rank() != x.rank())
    fail("{}: indices rank {} differs from input rank {}", c.node.describe(), ind.rank(), x.rank());
  for (int d = 0; d < x.rank(); ++d)
    c.guardEqual(ind.shape[d], x.shape[d], "indices and input shapes differ");
  size_t n = spatial;
  auto kernel = c.node.attrInts("kernel_shape");
  auto strides = c.node.attrInts("strides", std::vector<int64_t>(n, 1));
  auto pads = c.node.attrInts("pads", std::vector<int64_t>(2 * n, 0));
  if (kernel.size() != n || strides.size() != n || pads.size() != 2 * n)
    fail("{}: kernel_shape/strides/pads do not match {} spatial dims", c.node.describe(), n);
  requirePositive(c, kernel, "kernel_shape");
  requirePositive(c, strides, "strides");
  // Indices are flat offsets into the inferred output (as MaxPool's Indices give them); an
  // output_shape input only pads that result with zeros at the end of each dim.
  ir::Shape inferred{x.shape[0], x.shape[1]};
  for (size_t d = 0; d < n; ++d)
    inferred.push_back((x.shape[2 + d] - 1) * strides[d] + kernel[d] - pads[d] - pads[n + d]);
  sym::Context &ctx = c.ctx();
  sym::Expr total = product(ctx, inferred, 0, inferred.size());
  sym::Expr numel = product(ctx, x.shape, 0, x.shape.size());
  DType t = x.dtype;
  LTensor zeros = c.pointwise(
      t, {total}, [t](const Index &) { return zeroOf(t); }, true);
  LTensor flat = scatterElements(c, zeros, reshapeView(ctx, ind, {numel}),
                                 reshapeView(ctx, x, {numel}), 0, KILN_REDUCE_NONE);
  LTensor y = reshapeView(ctx, flat, inferred);
  if (!c.has(2)) {
    c.out(0, y);
    return;
  }
  ir::Shape outShape = c.requireSymIn(2, "output_shape", 0);
  if (outShape.size() != inferred.size())
    fail("{}: output_shape has {} entries for an input of rank {}", c.node.describe(),
         outShape.size(), x.rank());
  for (size_t d = 0; d < outShape.size(); ++d)
    c.guardEqual(sym::max(outShape[d], inferred[d]), outShape[d],
                 fmt::format("output_shape dim {} is smaller than the unpooled size", d));
  c.out(0, c.pointwise(t, outShape, [=](const Index &i) {
    VRef in;
    Index at = i;
    for (size_t d = 0; d < i.size(); ++d) {
      if (sym::provablyEqual(outShape[d], inferred[d])) continue;
      in = land(in, lt(loop::symInt(i[d]), loop::symInt(inferred[d])));
      at[d] = sym::min(i[d], inferred[d] - 1);
    }
    return in ? loop::select(in, y.load(at), zeroOf(t)) : y.load(at);
  }));
}

} // namespace

void registerSamplingOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"GridSample", 16, lowerGridSample},
                        {"RoiAlign", 10, lowerRoiAlign},
                        {"MaxUnpool", 9, lowerMaxUnpool},
                    });
}

} // namespace kiln::lower
