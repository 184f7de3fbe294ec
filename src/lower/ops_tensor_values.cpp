// Tensor ops that compute values rather than move them: masks and patterns (Trilu, OneHot,
// EyeLike), scans (CumSum, CumProd, Hardmax) and small elementwise ops (Dropout at inference,
// Shrink, Celu).
#include "lower/ops_common.h"

namespace kiln::lower {

namespace {

using loop::ReduceOp;

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
        VRef tmv = requireScalarInput(c, 2, DType::Bool);
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
  VRef one = mt == DType::Bool ? loop::constantInt(DType::Bool, 1) : loop::constant(mt, 1);
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
      k = requireScalarInput(c, 1, DType::Int64);
  }
  int rank = x.rank();
  DType t = x.dtype;
  Loader inner = x.load;
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    VRef diff = sv(i[rank - 1] - i[rank - 2]);
    VRef keep = bin(upper ? BinaryOp::Ge : BinaryOp::Le, diff, k);
    VRef zero = t == DType::Bool ? loop::constantInt(t, 0) : loop::constant(t, 0);
    return loop::select(keep, inner(i), zero);
  }));
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
    return loop::select(bin(BinaryOp::Eq, am.load(j), sv(i[ax])), loop::constant(t, 1),
                        loop::constant(t, 0));
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
                        loop::constant(acc, op == ReduceOp::Prod ? 1 : 0));
  });
  return c.reduce(w, {rank}, false, op, acc);
}

void lowerCumSum(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.rank() == 0) fail("{}: input must have rank >= 1", c.node.describe());
  if (x.dtype == DType::String || x.dtype == DType::Bool)
    fail("{}: the input must be numeric, got {}", c.node.describe(), dtypeName(x.dtype));
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
    VRef av = requireScalarInput(c, 1, DType::Int64);
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
                 VRef one = t == DType::Bool ? loop::constantInt(t, 1) : loop::constant(t, 1);
                 VRef zero = t == DType::Bool ? loop::constantInt(t, 0) : loop::constant(t, 0);
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

} // namespace

void registerTensorValueOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Dropout", 1, lowerDropout},
                        {"Trilu", 14, lowerTrilu},
                        {"Hardmax", 1, lowerHardmax},
                        {"CumSum", 11, lowerCumSum},
                        {"CumProd", 26, lowerCumSum},
                        {"OneHot", 9, lowerOneHot},
                        {"EyeLike", 9, lowerEyeLike},
                        {"Shrink", 9, lowerShrink},
                        {"Celu", 12, lowerCelu},
                    });
}

} // namespace kiln::lower
