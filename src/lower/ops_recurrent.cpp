// RNN / GRU / LSTM: the sequence is unrolled at compile time, each step a few pointwise
// kernels and reductions (gate matvecs) over the previous hidden and cell state.
#include "lower/ops_common.h"
#include "lower/value_math.h"

#include <cctype>

namespace kiln::lower {

namespace {

using loop::ReduceOp;
using namespace vmath;

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
  // Every operand is read at indices its ONNX shape allows; a model whose shapes disagree is
  // refused here (static) or by a guard before the run, never read outside a tensor.
  sym::Expr D = cp->constant(dirs);
  auto expectShape = [&](const std::optional<LTensor> &t, const ir::Shape &want, const char *name) {
    if (t) requireShape(c, *t, want, name);
  };
  expectShape(W, {D, GH, inSize}, "W");
  expectShape(R, {D, GH, Hs}, "R");
  expectShape(B, {D, cp->constant(2 * G * H)}, "B");
  expectShape(seqLens, {batch}, "sequence_lens");
  ir::Shape state = layout ? ir::Shape{batch, D, Hs} : ir::Shape{D, batch, Hs};
  expectShape(h0, state, "initial_h");
  expectShape(c0, state, "initial_c");
  expectShape(P, {D, cp->constant(3 * H)}, "P");
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

void registerRecurrentOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"RNN", 7, lowerRecurrent},
                        {"GRU", 7, lowerRecurrent},
                        {"LSTM", 7, lowerRecurrent},
                    });
}

} // namespace kiln::lower
