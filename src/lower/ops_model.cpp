// Model-level ops built from the generic lowering primitives:
//   NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (reductions + indirect gather),
//   ConvTranspose (a generated reduction over input channels and kernel taps),
//   RNN / GRU / LSTM (sequence unrolled at compile time).
#include "lower/gather.h"
#include "lower/ops_common.h"
#include "lower/value_math.h"

#include <cctype>
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
                        {"RNN", 7, lowerRecurrent},
                        {"GRU", 7, lowerRecurrent},
                        {"LSTM", 7, lowerRecurrent},
                    });
}

} // namespace kiln::lower
