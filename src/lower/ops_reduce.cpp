// Reductions and normalizations: Reduce*, ArgMax/ArgMin, Softmax, LogSoftmax,
// LayerNormalization, GroupNormalization. Each becomes Reduction kernels with pointwise
// prologues inlined.
#include "lower/ops_common.h"
#include "lower/runtime_shape.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

/// The reduced axes: a static list, or per-dim flags when the axes input is run-time data.
struct ReduceAxes {
  std::vector<int> fixed;
  std::vector<sym::Expr> flags; // non-empty: run-time axes
  int64_t numFlagged = 0;
  bool noop = false;
};

ReduceAxes reduceAxes(OpCtx &c, const LTensor &x) {
  ReduceAxes r;
  std::vector<int64_t> axes;
  bool axesAsInput = (c.node.op == "ReduceSum" && c.node.opset >= 13) || c.node.opset >= 18;
  if (axesAsInput && c.has(1) && !c.symIn(1)) {
    LTensor a = c.in(1);
    r.numFlagged = a.rank() == 0 ? 1 : c.requireStatic(a.shape[0], "the number of axes");
    if (r.numFlagged > 0) {
      r.flags = runtimeAxisFlags(c, 1, x.rank());
      return r;
    }
  } else if (axesAsInput) {
    if (c.has(1)) axes = c.requireIntsIn(1, "axes");
  } else {
    axes = c.node.attrInts("axes");
  }
  if (axes.empty()) {
    if (c.node.attrInt("noop_with_empty_axes", 0)) {
      r.noop = true;
      return r;
    }
    for (int d = 0; d < x.rank(); ++d)
      r.fixed.push_back(d);
    return r;
  }
  for (int64_t a : axes)
    r.fixed.push_back(c.normAxis(a, x.rank()));
  return r;
}

sym::Expr countOf(sym::Context &ctx, const LTensor &x, const ReduceAxes &axes) {
  if (!axes.flags.empty()) return flaggedCount(ctx, x.shape, axes.flags);
  sym::Expr n = ctx.constant(1);
  for (int a : axes.fixed)
    n = n * x.shape[a];
  return n;
}

void lowerReduce(OpCtx &c) {
  LTensor x = c.in(0);
  ReduceAxes axes = reduceAxes(c, x);
  bool keep = c.node.attrInt("keepdims", 1) != 0;
  const std::string &op = c.node.op;
  DType t = x.dtype;
  ir::Shape dropped; // output shape without the reduced dims (run-time axes)
  auto reduce = [&](const LTensor &v, bool keepdims, loop::ReduceOp rop, DType a,
                    const std::function<VRef(VRef)> &pre = nullptr) {
    if (axes.flags.empty()) return c.reduce(v, axes.fixed, keepdims, rop, a, pre);
    LTensor r = reduceFlagged(c, v, axes.flags, rop, a, pre);
    if (keepdims) return r;
    if (dropped.empty() && x.rank() > axes.numFlagged)
      dropped = keptDims(c, x.shape, axes.flags, x.rank() - axes.numFlagged, "out_dim");
    return reshapeView(c.ctx(), r, dropped);
  };
  if (axes.noop) {
    if (op == "ReduceSumSquare")
      c.out(0, mapUnary(c, x, [](VRef v) { return loop::binary(BinaryOp::Mul, v, v); }));
    else if (op == "ReduceL1")
      c.out(0, mapUnary(c, x, [](VRef v) { return loop::unary(UnaryOp::Abs, v); }));
    else
      c.out(0, x);
    return;
  }
  DType acc = isFloat(t) ? (t == DType::Float64 ? DType::Float64 : DType::Float32) : t;
  auto castBack = [&](LTensor r) {
    return mapUnary(c, r, [t](VRef v) { return loop::cast(v, t); });
  };
  if (op == "ReduceSum" || op == "ReduceMean") {
    LTensor s = reduce(x, keep, ReduceOp::Sum, acc);
    if (op == "ReduceMean") {
      sym::Expr n = countOf(c.ctx(), x, axes);
      s = mapUnary(c, s, [n, acc](VRef v) {
        return loop::binary(BinaryOp::Div, v, loop::cast(loop::symInt(n), acc));
      });
    }
    c.out(0, castBack(s));
    return;
  }
  if (op == "ReduceMax" || op == "ReduceMin") {
    c.out(0, reduce(x, keep, op == "ReduceMax" ? ReduceOp::Max : ReduceOp::Min, t));
    return;
  }
  if (op == "ReduceProd") {
    c.out(0, castBack(reduce(x, keep, ReduceOp::Prod, acc)));
    return;
  }
  if (op == "ReduceSumSquare" || op == "ReduceL2") {
    LTensor s = reduce(x, keep, ReduceOp::Sum, acc, [acc](VRef v) {
      v = loop::cast(v, acc);
      return loop::binary(BinaryOp::Mul, v, v);
    });
    if (op == "ReduceL2") s = mapUnary(c, s, [](VRef v) { return loop::unary(UnaryOp::Sqrt, v); });
    c.out(0, castBack(s));
    return;
  }
  if (op == "ReduceL1") {
    c.out(0, castBack(reduce(x, keep, ReduceOp::Sum, acc,
                             [](VRef v) { return loop::unary(UnaryOp::Abs, v); })));
    return;
  }
  if (op == "ReduceLogSum") {
    LTensor s = reduce(x, keep, ReduceOp::Sum, acc);
    c.out(0, castBack(mapUnary(c, s, [](VRef v) { return loop::unary(UnaryOp::Log, v); })));
    return;
  }
  if (op == "ReduceLogSumExp") {
    // log(sum(exp(x - max))) + max, stable for large inputs.
    LTensor m = c.realize(reduce(x, true, ReduceOp::Max, t));
    ir::Shape xs = x.shape;
    sym::Context *ctx = &c.ctx();
    LTensor shifted = c.pointwise(acc, xs, [=](const Index &i) {
      return loop::unary(
          UnaryOp::Exp,
          loop::cast(loop::binary(BinaryOp::Sub, x.load(i), loadBroadcast(*ctx, m, xs, i)), acc));
    });
    LTensor s = reduce(shifted, true, ReduceOp::Sum, acc);
    LTensor r = c.pointwise(t, s.shape, [=](const Index &i) {
      return loop::cast(loop::binary(BinaryOp::Add, loop::unary(UnaryOp::Log, s.load(i)),
                                     loop::cast(m.load(i), acc)),
                        t);
    });
    if (!keep && axes.flags.empty()) {
      ir::Shape outShape;
      for (int d = 0; d < x.rank(); ++d)
        if (std::find(axes.fixed.begin(), axes.fixed.end(), d) == axes.fixed.end())
          outShape.push_back(x.shape[d]);
      r = reshapeView(c.ctx(), r, outShape);
    } else if (!keep) {
      if (x.rank() > axes.numFlagged)
        dropped = keptDims(c, x.shape, axes.flags, x.rank() - axes.numFlagged, "out_dim");
      r = reshapeView(c.ctx(), r, dropped);
    }
    c.out(0, r);
    return;
  }
  c.unsupported(op);
}

void lowerArgReduce(OpCtx &c) {
  LTensor x = c.in(0);
  int axis = c.normAxis(c.node.attrInt("axis", 0), x.rank());
  bool keep = c.node.attrInt("keepdims", 1) != 0;
  ReduceOp op = c.node.op == "ArgMax" ? ReduceOp::ArgMax : ReduceOp::ArgMin;
  LTensor r = c.reduce(x, {axis}, keep, op, x.dtype);
  if (c.node.attrInt("select_last_index", 0)) c.prog().kernels.back()->lastIndex = true;
  c.out(0, r);
}

/// Softmax family over one axis (opset >= 13) or the flattened tail (older opsets).
void lowerSoftmax(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "Softmax input");
  bool legacy = c.node.opset < 13;
  int axis = c.normAxis(c.node.attrInt("axis", legacy ? 1 : -1), x.rank());
  ir::Shape orig = x.shape;
  if (legacy) {
    x = reshapeView(c.ctx(), x,
                    {product(c.ctx(), orig, 0, axis), product(c.ctx(), orig, axis, orig.size())});
    axis = 1;
  }
  DType t = x.dtype, acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  LTensor m = c.reduce(x, {axis}, true, ReduceOp::Max, t);
  auto shiftedAt = [=](const Index &i) {
    return loop::cast(loop::binary(BinaryOp::Sub, x.load(i), loadBroadcast(*ctx, m, xs, i)), acc);
  };
  std::string op = c.node.op;
  LTensor e = c.pointwise(acc, xs, [=](const Index &i) {
    VRef s = shiftedAt(i);
    return op == "Hardmax" ? s : loop::unary(UnaryOp::Exp, s);
  });
  LTensor s = c.reduce(e, {axis}, true, ReduceOp::Sum, acc);
  LTensor r = c.pointwise(t, xs, [=](const Index &i) {
    VRef sum = loadBroadcast(*ctx, s, xs, i);
    VRef v = op == "LogSoftmax"
                 ? loop::binary(BinaryOp::Sub, shiftedAt(i), loop::unary(UnaryOp::Log, sum))
                 : loop::binary(BinaryOp::Div, loop::unary(UnaryOp::Exp, shiftedAt(i)), sum);
    return loop::cast(v, t);
  });
  if (legacy) r = reshapeView(c.ctx(), r, orig);
  c.out(0, r);
}

void lowerLayerNorm(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "LayerNormalization input");
  int axis = c.normAxis(c.node.attrInt("axis", -1), x.rank());
  double eps = c.node.attrFloat("epsilon", 1e-5f);
  std::vector<int> axes;
  for (int d = axis; d < x.rank(); ++d)
    axes.push_back(d);
  DType t = x.dtype, acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  sym::Expr n = product(c.ctx(), x.shape, axis, x.shape.size());
  VRef nv = loop::cast(loop::symInt(n), acc);
  LTensor sum = c.reduce(x, axes, true, ReduceOp::Sum, acc);
  LTensor mean = c.realize(c.pointwise(acc, sum.shape, [=](const Index &i) {
    return loop::binary(BinaryOp::Div, sum.load(i), nv);
  }));
  auto centered = [=](const Index &i) {
    return loop::binary(BinaryOp::Sub, loop::cast(x.load(i), acc),
                        loadBroadcast(*ctx, mean, xs, i));
  };
  LTensor sq = c.pointwise(acc, xs, [=](const Index &i) {
    VRef d = centered(i);
    return loop::binary(BinaryOp::Mul, d, d);
  });
  LTensor var = c.reduce(sq, axes, true, ReduceOp::Sum, acc);
  LTensor inv = c.realize(c.pointwise(acc, var.shape, [=](const Index &i) {
    VRef v = loop::binary(BinaryOp::Add, loop::binary(BinaryOp::Div, var.load(i), nv),
                          loop::constant(acc, eps));
    return loop::binary(BinaryOp::Div, loop::constant(acc, 1), loop::unary(UnaryOp::Sqrt, v));
  }));
  LTensor scale = c.in(1);
  requireBroadcastsTo(scale.shape, xs, c.node.describe() + " Scale");
  std::optional<LTensor> bias;
  if (c.has(2)) bias = c.in(2);
  if (bias) requireBroadcastsTo(bias->shape, xs, c.node.describe() + " B");
  LTensor y = c.pointwise(t, xs, [=](const Index &i) {
    VRef y = loop::binary(BinaryOp::Mul, centered(i), loadBroadcast(*ctx, inv, xs, i));
    y = loop::binary(BinaryOp::Mul, y, loop::cast(loadBroadcast(*ctx, scale, xs, i), acc));
    if (bias)
      y = loop::binary(BinaryOp::Add, y, loop::cast(loadBroadcast(*ctx, *bias, xs, i), acc));
    return loop::cast(y, t);
  });
  // Written once, consumers read it (sched::Target::realizeLayerNormOutput, the CPU): left
  // lazy, a post-norm transformer's residual stream inlines every earlier layer's
  // normalisation (and the embedding gathers) into each later LayerNorm kernel, and a
  // MatMul consumer needs it written anyway. CUDA keeps the lazy lowering (not measured
  // there yet).
  const bool writeOnce = c.lowerer().target.realizeLayerNormOutput;
  c.out(0, writeOnce ? c.realize(y) : y);
  c.out(1, mean);
  c.out(2, inv);
}

/// GroupNormalization: each group of C / num_groups channels (with all spatial positions)
/// normalized by its own mean and variance, then a per-channel scale and bias (opset 21;
/// opset 18's are per group).
void lowerGroupNorm(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1), bias = c.in(2);
  requireFloat(c, x, "GroupNormalization input");
  if (x.rank() < 2) fail("{}: input must have rank >= 2", c.node.describe());
  int64_t groups = c.node.attrInt("num_groups", 0);
  if (groups <= 0) fail("{}: num_groups must be > 0", c.node.describe());
  double eps = c.node.attrFloat("epsilon", 1e-5f);
  sym::Context &ctx = c.ctx();
  sym::Expr ch = x.shape[1], perGroup = sym::floorDiv(ch, groups);
  c.guardEqual(perGroup * groups, ch, "GroupNormalization: channels must divide into num_groups");
  sym::Expr spatial = product(ctx, x.shape, 2, x.shape.size());
  DType t = x.dtype, acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  ir::Shape gs{x.shape[0], ctx.constant(groups), perGroup * spatial};
  LTensor xg = reshapeView(ctx, x, gs);
  VRef nv = loop::cast(loop::symInt(perGroup * spatial), acc);
  LTensor sum = c.reduce(xg, {2}, false, ReduceOp::Sum, acc);
  LTensor mean = c.realize(c.pointwise(acc, sum.shape, [=](const Index &i) {
    return loop::binary(BinaryOp::Div, sum.load(i), nv);
  }));
  LTensor sq = c.pointwise(acc, gs, [=](const Index &i) {
    VRef d = loop::binary(BinaryOp::Sub, loop::cast(xg.load(i), acc), mean.load({i[0], i[1]}));
    return loop::binary(BinaryOp::Mul, d, d);
  });
  LTensor var = c.reduce(sq, {2}, false, ReduceOp::Sum, acc);
  LTensor inv = c.realize(c.pointwise(acc, var.shape, [=](const Index &i) {
    VRef v = loop::binary(BinaryOp::Add, loop::binary(BinaryOp::Div, var.load(i), nv),
                          loop::constant(acc, eps));
    return loop::binary(BinaryOp::Div, loop::constant(acc, 1), loop::unary(UnaryOp::Sqrt, v));
  }));
  bool perChannel = c.node.opset >= 21;
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    sym::Expr g = sym::floorDiv(i[1], perGroup);
    Index p{perChannel ? i[1] : g};
    VRef d = loop::binary(BinaryOp::Sub, loop::cast(x.load(i), acc), mean.load({i[0], g}));
    VRef y = loop::binary(BinaryOp::Mul, d, inv.load({i[0], g}));
    y = loop::binary(BinaryOp::Mul, y, loop::cast(scale.load(p), acc));
    y = loop::binary(BinaryOp::Add, y, loop::cast(bias.load(p), acc));
    return loop::cast(y, t);
  }));
}

} // namespace

void registerReduceOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"ReduceSum", 1, lowerReduce},
                        {"ReduceMean", 1, lowerReduce},
                        {"ReduceMax", 1, lowerReduce},
                        {"ReduceMin", 1, lowerReduce},
                        {"ReduceProd", 1, lowerReduce},
                        {"ReduceSumSquare", 1, lowerReduce},
                        {"ReduceL1", 1, lowerReduce},
                        {"ReduceL2", 1, lowerReduce},
                        {"ReduceLogSum", 1, lowerReduce},
                        {"ReduceLogSumExp", 1, lowerReduce},
                        {"ArgMax", 1, lowerArgReduce},
                        {"ArgMin", 1, lowerArgReduce},
                        {"Softmax", 1, lowerSoftmax},
                        {"LogSoftmax", 1, lowerSoftmax},
                        {"LayerNormalization", 17, lowerLayerNorm},
                        {"GroupNormalization", 18, lowerGroupNorm},
                    });
}

} // namespace kiln::lower
