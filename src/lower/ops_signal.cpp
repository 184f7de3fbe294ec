// Signal ops: DFT, STFT, MelWeightMatrix and the Hann/Hamming/Blackman windows. A DFT is a plain
// sum over n of z[n] * exp(-+2*pi*i*k*n/N), one Float64 reduction per output bin; the angle is
// built from the integer (k*n mod N) so that large k*n loses no accuracy. O(N^2) per
// transform, which suits the short transforms ONNX models use and needs no FFT state.
#include "lower/ops_common.h"

#include <numbers>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

VRef f64(double v) {
  return loop::constant(DType::Float64, v);
}
VRef asF64(sym::Expr e) {
  return loop::cast(loop::symInt(e), DType::Float64);
}

/// Checks that the last dim of x (real/imaginary components) is 1 or 2.
void requireComponents(OpCtx &c, const LTensor &x, const char *what) {
  sym::Expr comps = x.shape.back();
  if (comps.isConst() && comps->value != 1 && comps->value != 2)
    fail("{}: the last dim of {} must be 1 (real) or 2 (complex), got {}", c.node.describe(), what,
         comps->value);
  c.guardEqual(sym::max(sym::min(comps, c.ctx().constant(2)), c.ctx().constant(1)), comps,
               fmt::format("the last dim of {} must be 1 (real) or 2 (complex)", what));
}

/// Fails (or guards at run time) unless x is real, for one-sided outputs.
void requireReal(OpCtx &c, const LTensor &x, const char *what) {
  c.guardEqual(x.shape.back(), c.ctx().constant(1),
               fmt::format("onesided output needs a real {} (last dim 1)", what));
}

/// (re, im) of x at `at` (all dims but the components one), as Float64.
std::pair<VRef, VRef> components(const LTensor &x, Index at) {
  sym::Expr comps = x.shape.back();
  at.push_back(comps.ctx().constant(0));
  VRef re = loop::cast(x.load(at), DType::Float64);
  at.back() = comps - 1; // the imaginary part when there are two components
  VRef isComplex = bin(BinaryOp::Eq, loop::symInt(comps), loop::constantInt(DType::Int64, 2));
  VRef im = loop::select(isComplex, loop::cast(x.load(at), DType::Float64), f64(0));
  return {re, im};
}

/// (re, im) of the sample that bin `p` (all dims but the components one) sums at step n.
using SampleFn = std::function<std::pair<VRef, VRef>(const Index &p, sym::Expr n)>;

/// out[p..., comp] = sum_{n < len} z(p, n) * exp(sign * 2*pi*i * p[kAxis]*n / period), where
/// the sign is - (forward) or + (inverse, also scaled by 1/period); cast to `t`.
LTensor dftSum(OpCtx &c, DType t, ir::Shape outShape, int kAxis, sym::Expr len, sym::Expr period,
               bool inverse, SampleFn z) {
  int r = static_cast<int>(outShape.size()); // components dim is r-1, n is r
  ir::Shape terms = outShape;
  terms.push_back(len);
  double step = 2 * std::numbers::pi;
  LTensor prod = c.pointwise(DType::Float64, terms, [=](const Index &p) {
    Index at(p.begin(), p.end() - 2);
    sym::Expr n = p[r];
    auto [zr, zi] = z(at, n);
    VRef angle =
        bin(BinaryOp::Div, bin(BinaryOp::Mul, asF64(sym::mod(at[kAxis] * n, period)), f64(step)),
            asF64(period));
    VRef cs = loop::unary(UnaryOp::Cos, angle), sn = loop::unary(UnaryOp::Sin, angle);
    if (inverse) sn = loop::unary(UnaryOp::Neg, sn);
    // z * (cos - i sin): re = zr cos + zi sin, im = zi cos - zr sin.
    VRef re = bin(BinaryOp::Add, bin(BinaryOp::Mul, zr, cs), bin(BinaryOp::Mul, zi, sn));
    VRef im = bin(BinaryOp::Sub, bin(BinaryOp::Mul, zi, cs), bin(BinaryOp::Mul, zr, sn));
    VRef isRe = bin(BinaryOp::Eq, loop::symInt(p[r - 1]), loop::constantInt(DType::Int64, 0));
    return loop::select(isRe, re, im);
  });
  LTensor sum = c.realize(c.reduce(prod, {r}, false, ReduceOp::Sum, DType::Float64));
  return c.pointwise(t, outShape, [=](const Index &p) {
    VRef v = sum.load(p);
    if (inverse) v = bin(BinaryOp::Div, v, asF64(period));
    return loop::cast(v, t);
  });
}

/// Inverse of a one-sided spectrum (numpy's irfft): x holds bins 0..len-1 of a Hermitian
/// spectrum of length n (dft_length, default 2*(len-1)); bin k >= len is conj(X[n-k]) and
/// missing bins are 0. The output is real: n samples, components dim 1.
LTensor inverseOnesided(OpCtx &c, const LTensor &x, const LTensor &src, int axis) {
  sym::Expr len = x.shape[axis];
  sym::Expr n = c.has(1) ? c.requireScalarSymIn(1, "dft_length", 1) : (len - 1) * 2;
  ir::Shape outShape = x.shape;
  outShape[axis] = n;
  outShape.back() = c.ctx().constant(1);
  c.guardEqual(sym::max(len, c.ctx().constant(1)), len, "an empty spectrum cannot be inverted");
  return dftSum(c, x.dtype, outShape, axis, n, n, true, [=](const Index &p, sym::Expr k) {
    sym::Expr mirrored = sym::min(k, n - k); // bin k of the full spectrum comes from here
    Index at = p;
    at[axis] = sym::min(mirrored, len - 1);
    auto [re, im] = components(src, at);
    VRef conj = bin(BinaryOp::Lt, loop::symInt(n - k), loop::symInt(k));
    im = loop::select(conj, loop::unary(UnaryOp::Neg, im), im);
    VRef inside = bin(BinaryOp::Lt, loop::symInt(mirrored), loop::symInt(len));
    return std::pair{loop::select(inside, re, f64(0)), loop::select(inside, im, f64(0))};
  });
}

/// DFT along one signal axis (see lowerDFT).
LTensor dftAlong(OpCtx &c, const LTensor &x, const LTensor &src, int axis, bool inverse,
                 bool onesided) {
  if (inverse && onesided) return inverseOnesided(c, x, src, axis);
  sym::Expr len = x.shape[axis];
  sym::Expr n = c.has(1) ? c.requireScalarSymIn(1, "dft_length", 1) : len;
  ir::Shape outShape = x.shape;
  outShape[axis] = onesided ? sym::floorDiv(n, 2) + 1 : n;
  outShape.back() = c.ctx().constant(2);
  // dft_length pads with zeros past the signal's end (or truncates it).
  bool mayPad = !sym::provablyGE(len, n);
  if (mayPad) // the clamped index of a padded sample must exist
    c.guardEqual(sym::max(len, c.ctx().constant(1)), len, "an empty signal cannot be padded");
  return dftSum(c, x.dtype, outShape, axis, n, n, inverse, [=](const Index &p, sym::Expr k) {
    Index at = p;
    at[axis] = mayPad ? sym::min(k, len - 1) : k;
    auto [re, im] = components(src, at);
    if (!mayPad) return std::pair{re, im};
    VRef inside = bin(BinaryOp::Lt, loop::symInt(k), loop::symInt(len));
    return std::pair{loop::select(inside, re, f64(0)), loop::select(inside, im, f64(0))};
  });
}

void lowerDFT(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "input");
  if (x.rank() < 3)
    fail("{}: input must have rank >= 3 ([batch, dims..., 1 or 2]), got rank {}", c.node.describe(),
         x.rank());
  requireComponents(c, x, "input");
  bool inverse = c.node.attrInt("inverse", 0) != 0;
  bool onesided = c.node.attrInt("onesided", 0) != 0;
  if (onesided && !inverse) requireReal(c, x, "input");
  LTensor src = x.cheap ? x : c.realize(x);
  int rank = x.rank();
  auto signalAxis = [&](int64_t a) {
    int axis = c.normAxis(a, rank);
    if (axis == 0 || axis == rank - 1)
      fail("{}: axis {} must be a signal dim (not the batch or the components dim)",
           c.node.describe(), a);
    return axis;
  };
  bool axisInput = c.node.opset >= 20 && c.has(2);
  auto known = axisInput ? c.symIn(2) : std::nullopt;
  if (!axisInput || (known && known->size() == 1 && (*known)[0].isConst())) {
    int64_t a =
        axisInput ? (*known)[0]->value : (c.node.opset >= 20 ? -2 : c.node.attrInt("axis", 1));
    c.out(0, dftAlong(c, x, src, signalAxis(a), inverse, onesided));
    return;
  }
  // The axis is run-time data: one DFT per signal axis, the result chosen by its value. Every
  // candidate must give the same output shape.
  std::vector<LTensor> per;
  for (int d = 1; d < rank - 1; ++d) {
    per.push_back(dftAlong(c, x, src, d, inverse, onesided));
    for (int e = 0; e < rank; ++e)
      if (!sym::provablyEqual(per.back().shape[e], per.front().shape[e]))
        fail("{}: the axis is run-time data, and the output shape would depend on it (dim {} "
             "differs between axes 1 and {}); give the axis as a constant",
             c.node.describe(), e, d);
  }
  VRef av = loop::cast(requireScalarInput(c, 2, DType::Int64), DType::Int64);
  av = loop::select(bin(BinaryOp::Lt, av, loop::constantInt(DType::Int64, 0)),
                    bin(BinaryOp::Add, av, loop::constantInt(DType::Int64, rank)), av);
  // A symbol read before the run: an axis that is not a signal dim fails there, by name.
  av = loop::symInt(c.runtimeSymbol(av, "axis", 1, rank - 2));
  c.out(0, c.pointwise(per[0].dtype, per[0].shape, [=](const Index &i) {
    VRef r = per.back().load(i);
    for (size_t d = per.size() - 1; d-- > 0;)
      r = loop::select(bin(BinaryOp::Eq, av, loop::constantInt(DType::Int64, d + 1)),
                       per[d].load(i), r);
    return r;
  }));
}

void lowerSTFT(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "signal");
  if (x.rank() != 3)
    fail("{}: signal must have rank 3 ([batch, length, 1 or 2]), got rank {}", c.node.describe(),
         x.rank());
  requireComponents(c, x, "signal");
  bool onesided = c.node.attrInt("onesided", 1) != 0;
  if (onesided) requireReal(c, x, "signal");
  sym::Expr step = c.requireScalarSymIn(1, "frame_step", 1);
  std::optional<LTensor> window;
  if (c.has(2)) {
    window = c.in(2);
    if (window->rank() != 1)
      fail("{}: window must be 1-D, got rank {}", c.node.describe(), window->rank());
  }
  sym::Expr frameLen;
  if (c.has(3)) {
    frameLen = c.requireScalarSymIn(3, "frame_length", 1);
    if (window) c.guardEqual(window->shape[0], frameLen, "window length must equal frame_length");
  } else if (window) {
    frameLen = window->shape[0];
  } else {
    fail("{}: one of window and frame_length is required", c.node.describe());
  }
  sym::Expr len = x.shape[1];
  c.guardEqual(sym::min(frameLen, len), frameLen, "frame_length must not exceed the signal length");
  sym::Expr frames = sym::floorDiv(len - frameLen, step) + 1;
  ir::Shape outShape = {x.shape[0], frames, onesided ? sym::floorDiv(frameLen, 2) + 1 : frameLen,
                        c.ctx().constant(2)};
  LTensor src = x.cheap ? x : c.realize(x);
  std::optional<LTensor> w;
  if (window) w = window->cheap ? *window : c.realize(*window);
  c.out(0, dftSum(c, x.dtype, outShape, 2, frameLen, frameLen, false,
                  [=](const Index &p, sym::Expr n) {
                    auto [re, im] = components(src, {p[0], p[1] * step + n});
                    if (!w) return std::pair{re, im};
                    VRef wn = loop::cast(w->load({n}), DType::Float64);
                    return std::pair{bin(BinaryOp::Mul, re, wn), bin(BinaryOp::Mul, im, wn)};
                  }));
}

/// Generalized cosine window: a0 - a1 cos(x) + a2 cos(2x), x = 2*pi*n / (N or N-1).
void cosineWindow(OpCtx &c, double a0, double a1, double a2) {
  sym::Expr size = c.requireScalarSymIn(0, "size", 0);
  int64_t code = c.node.attrInt("output_datatype", 1);
  DType t;
  if (!dtypeFromOnnx(static_cast<int>(code), t) || t == DType::String)
    c.unsupported(fmt::format("output_datatype {}", code));
  bool periodic = c.node.attrInt("periodic", 1) != 0;
  sym::Expr denom = periodic ? size : size - 1;
  c.out(0, c.pointwise(t, {size}, [=](const Index &i) {
    // Float division: a symmetric window of size 1 gives 0/0 = NaN as the spec's formula.
    VRef x = bin(BinaryOp::Div, bin(BinaryOp::Mul, asF64(i[0]), f64(2 * std::numbers::pi)),
                 asF64(denom));
    VRef v = bin(BinaryOp::Sub, f64(a0), bin(BinaryOp::Mul, f64(a1), loop::unary(UnaryOp::Cos, x)));
    if (a2 != 0)
      v = bin(
          BinaryOp::Add, v,
          bin(BinaryOp::Mul, f64(a2), loop::unary(UnaryOp::Cos, bin(BinaryOp::Mul, f64(2), x))));
    return loop::cast(v, t);
  }));
}

void lowerHannWindow(OpCtx &c) {
  cosineWindow(c, 0.5, 0.5, 0);
}
void lowerHammingWindow(OpCtx &c) {
  cosineWindow(c, 25.0 / 46, 21.0 / 46, 0);
}
void lowerBlackmanWindow(OpCtx &c) {
  cosineWindow(c, 0.42, 0.5, 0.08);
}

/// A float scalar input (ONNX gives rank 0; element 0 of any rank is taken) as Float64.
VRef floatScalarIn(OpCtx &c, size_t i, const char *what) {
  requireFloat(c, c.in(i), what);
  return requireScalarInput(c, i, DType::Float64);
}

/// MelWeightMatrix as the ONNX reference computes it, in float64 (numpy 1.x promotion, which
/// made the suite's data): mel edges m_k = lowMel + k * (highMel - lowMel) / (bins + 2) for
/// k = 0..bins+1, back to hertz, then the integer bin f_k = (dft_length + 1) * hz // sample_rate
/// (numpy's float floor division, truncated to int). Column i is the triangle f_i, f_i+1, f_i+2.
/// The stages are realized so that the C++ compiler cannot fuse a multiply with the following
/// add into one FMA, which would round differently from numpy near the integer boundaries.
void lowerMelWeightMatrix(OpCtx &c) {
  sym::Expr bins = c.requireScalarSymIn(0, "num_mel_bins", 0);
  sym::Expr dft = c.requireScalarSymIn(1, "dft_length", 1);
  VRef rate = asF64(c.requireScalarSymIn(2, "sample_rate", 1));
  VRef lo = floatScalarIn(c, 3, "lower_edge_hertz"), hi = floatScalarIn(c, 4, "upper_edge_hertz");
  int64_t code = c.node.attrInt("output_datatype", 1);
  DType t;
  if (!dtypeFromOnnx(static_cast<int>(code), t) || !isFloat(t))
    c.unsupported(fmt::format("output_datatype {}", code));
  auto mul = [](VRef a, VRef b) { return bin(BinaryOp::Mul, a, b); };
  sym::Expr edges = bins + 2;
  // mel[0] = lowMel, mel[1] = highMel: 2595 * log10(1 + hz / 700).
  LTensor mel = c.realize(c.pointwise(DType::Float64, {c.ctx().constant(2)}, [=](const Index &p) {
    VRef hz = loop::select(
        bin(BinaryOp::Eq, loop::symInt(p[0]), loop::constantInt(DType::Int64, 0)), lo, hi);
    VRef ratio = bin(BinaryOp::Add, f64(1), bin(BinaryOp::Div, hz, f64(700)));
    return mul(f64(2595), loop::unary(UnaryOp::Log10, ratio));
  }));
  VRef lowMel = mel.load({c.ctx().constant(0)}), highMel = mel.load({c.ctx().constant(1)});
  LTensor steps = c.realize(c.pointwise(DType::Float64, {edges}, [=](const Index &p) {
    return mul(asF64(p[0]), bin(BinaryOp::Div, bin(BinaryOp::Sub, highMel, lowMel), asF64(edges)));
  }));
  // (dft_length + 1) * 700 * (10^(m / 2595) - 1)
  LTensor scaled = c.realize(c.pointwise(DType::Float64, {edges}, [=](const Index &p) {
    VRef m = bin(BinaryOp::Add, steps.load(p), lowMel);
    VRef hz =
        mul(f64(700), bin(BinaryOp::Sub,
                          bin(BinaryOp::Pow, f64(10), bin(BinaryOp::Div, m, f64(2595))), f64(1)));
    return mul(asF64(dft + 1), hz);
  }));
  // numpy's floor division (b = sample_rate >= 1): d = (a - fmod(a, b)) / b, one less if the
  // remainder is negative, then rounded to the nearest integer (d is one up to rounding).
  LTensor fbin = c.realize(c.pointwise(DType::Int64, {edges}, [=](const Index &p) {
    VRef a = scaled.load(p);
    VRef mod = bin(BinaryOp::Fmod, a, rate);
    VRef d = bin(BinaryOp::Div, bin(BinaryOp::Sub, a, mod), rate);
    d = loop::select(bin(BinaryOp::Lt, mod, f64(0)), bin(BinaryOp::Sub, d, f64(1)), d);
    VRef fl = loop::unary(UnaryOp::Floor, d);
    VRef up = bin(BinaryOp::Gt, bin(BinaryOp::Sub, d, fl), f64(0.5));
    return loop::cast(loop::select(up, bin(BinaryOp::Add, fl, f64(1)), fl), DType::Int64);
  }));
  // Rows outside [0, dft_length / 2] (where the reference fails or wraps around) stay 0.
  c.out(0, c.pointwise(t, {sym::floorDiv(dft, 2) + 1, bins}, [=](const Index &p) {
    VRef j = loop::symInt(p[0]);
    VRef l = fbin.load({p[1]}), ctr = fbin.load({p[1] + 1}), h = fbin.load({p[1] + 2});
    auto asF = [](VRef v) { return loop::cast(v, DType::Float64); };
    VRef falling = bin(BinaryOp::And, bin(BinaryOp::Gt, h, ctr),
                       bin(BinaryOp::And, bin(BinaryOp::Ge, j, ctr), bin(BinaryOp::Lt, j, h)));
    VRef fall = bin(BinaryOp::Div, asF(bin(BinaryOp::Sub, h, j)), asF(bin(BinaryOp::Sub, h, ctr)));
    VRef rising = bin(BinaryOp::And, bin(BinaryOp::Ge, j, l), bin(BinaryOp::Le, j, ctr));
    VRef rise = bin(BinaryOp::Div, asF(bin(BinaryOp::Sub, j, l)), asF(bin(BinaryOp::Sub, ctr, l)));
    VRef peak = loop::select(bin(BinaryOp::Eq, j, ctr), f64(1), f64(0));
    VRef v = loop::select(
        falling, fall,
        loop::select(bin(BinaryOp::Eq, l, ctr), peak, loop::select(rising, rise, f64(0))));
    return loop::cast(v, t);
  }));
}

} // namespace

void registerSignalOps(std::vector<OpInfo> &r) {
  r.push_back({"DFT", 17, lowerDFT});
  r.push_back({"STFT", 17, lowerSTFT});
  r.push_back({"HannWindow", 17, lowerHannWindow});
  r.push_back({"HammingWindow", 17, lowerHammingWindow});
  r.push_back({"BlackmanWindow", 17, lowerBlackmanWindow});
  r.push_back({"MelWeightMatrix", 17, lowerMelWeightMatrix});
}

} // namespace kiln::lower
