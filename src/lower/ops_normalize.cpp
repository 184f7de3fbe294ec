// Normalizations over computed moments (InstanceNormalization, MeanVarianceNormalization,
// LpNormalization, LRN) and Lp pooling (GlobalLpPool, LpPool): reductions whose results the
// following pointwise kernels broadcast back.
#include "lower/ops_common.h"
#include "lower/window.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

struct Moments {
  LTensor mean; // acc dtype, keepdims shape, realized
  LTensor var;  // acc dtype, keepdims shape, realized (population variance)
};

/// Mean and variance of x over `axes` (two-pass: mean, then mean of squared deviation).
Moments moments(OpCtx &c, const LTensor &x, const std::vector<int> &axes) {
  DType acc = accOf(x.dtype);
  sym::Context *ctx = &c.ctx();
  sym::Expr n = ctx->constant(1);
  for (int a : axes)
    n = n * x.shape[a];
  VRef nv = loop::cast(sv(n), acc);
  ir::Shape xs = x.shape;
  LTensor sum = c.reduce(x, axes, true, ReduceOp::Sum, acc);
  LTensor mean = c.realize(c.pointwise(
      acc, sum.shape, [=](const Index &i) { return bin(BinaryOp::Div, sum.load(i), nv); }));
  LTensor sq = c.pointwise(acc, xs, [=](const Index &i) {
    VRef d = bin(BinaryOp::Sub, loop::cast(x.load(i), acc), loadBroadcast(*ctx, mean, xs, i));
    return bin(BinaryOp::Mul, d, d);
  });
  LTensor vs = c.reduce(sq, axes, true, ReduceOp::Sum, acc);
  LTensor var = c.realize(c.pointwise(
      acc, vs.shape, [=](const Index &i) { return bin(BinaryOp::Div, vs.load(i), nv); }));
  return {mean, var};
}

void lowerInstanceNorm(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1), bias = c.in(2);
  requireFloat(c, x, "InstanceNormalization input");
  if (x.rank() < 3) fail("{}: input must have rank >= 3", c.node.describe());
  requireShape(c, scale, {x.shape[1]}, "scale");
  requireShape(c, bias, {x.shape[1]}, "B");
  double eps = c.node.attrFloat("epsilon", 1e-5f);
  std::vector<int> axes;
  for (int d = 2; d < x.rank(); ++d)
    axes.push_back(d);
  Moments m = moments(c, x, axes);
  DType t = x.dtype, acc = accOf(t);
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  LTensor var = m.var;
  LTensor inv = c.realize(c.pointwise(acc, var.shape, [=](const Index &i) {
    return bin(
        BinaryOp::Div, loop::constant(acc, 1),
        loop::unary(UnaryOp::Sqrt, bin(BinaryOp::Add, var.load(i), loop::constant(acc, eps))));
  }));
  LTensor mean = m.mean;
  c.out(0, c.pointwise(t, xs, [=](const Index &i) {
    VRef d = bin(BinaryOp::Sub, loop::cast(x.load(i), acc), loadBroadcast(*ctx, mean, xs, i));
    VRef y = bin(BinaryOp::Mul, d, loadBroadcast(*ctx, inv, xs, i));
    y = bin(BinaryOp::Mul, y, loop::cast(scale.load({i[1]}), acc));
    y = bin(BinaryOp::Add, y, loop::cast(bias.load({i[1]}), acc));
    return loop::cast(y, t);
  }));
}

void lowerMVN(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "MeanVarianceNormalization input");
  std::vector<int64_t> a = c.node.attrInts("axes", {0, 2, 3});
  std::vector<int> axes;
  for (int64_t v : a)
    axes.push_back(c.normAxis(v, x.rank()));
  Moments m = moments(c, x, axes);
  DType t = x.dtype, acc = accOf(t);
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  LTensor mean = m.mean, var = m.var;
  c.out(0, c.pointwise(t, xs, [=](const Index &i) {
    VRef d = bin(BinaryOp::Sub, loop::cast(x.load(i), acc), loadBroadcast(*ctx, mean, xs, i));
    VRef sd = bin(BinaryOp::Add, loop::unary(UnaryOp::Sqrt, loadBroadcast(*ctx, var, xs, i)),
                  loop::constant(acc, 1e-9));
    return loop::cast(bin(BinaryOp::Div, d, sd), t);
  }));
}

/// (sum |v|^p)^(1/p) building blocks.
VRef lpTerm(VRef v, int64_t p, DType acc) {
  v = loop::cast(v, acc);
  if (p == 1) return loop::unary(UnaryOp::Abs, v);
  if (p == 2) return bin(BinaryOp::Mul, v, v);
  return bin(BinaryOp::Pow, loop::unary(UnaryOp::Abs, v), loop::constant(acc, (double)p));
}
VRef lpRoot(VRef s, int64_t p, DType acc) {
  if (p == 1) return s;
  if (p == 2) return loop::unary(UnaryOp::Sqrt, s);
  return bin(BinaryOp::Pow, s, loop::constant(acc, 1.0 / (double)p));
}

void lowerLpNormalization(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "LpNormalization input");
  int axis = c.normAxis(c.node.attrInt("axis", -1), x.rank());
  int64_t p = c.node.attrInt("p", 2);
  if (p != 1 && p != 2) fail("{}: p must be 1 or 2, got {}", c.node.describe(), p);
  DType t = x.dtype, acc = accOf(t);
  LTensor s =
      c.reduce(x, {axis}, true, ReduceOp::Sum, acc, [=](VRef v) { return lpTerm(v, p, acc); });
  sym::Context *ctx = &c.ctx();
  ir::Shape xs = x.shape;
  LTensor norm = c.realize(mapUnary(c, s, [=](VRef v) { return lpRoot(v, p, acc); }));
  // A zero norm (an all-zero line) gives zeros, as ONNX's reference does, not NaN.
  c.out(0, c.pointwise(t, xs, [=](const Index &i) {
    VRef n = loadBroadcast(*ctx, norm, xs, i), zero = loop::constant(acc, 0);
    VRef y = bin(BinaryOp::Div, loop::cast(x.load(i), acc), n);
    return loop::cast(loop::select(bin(BinaryOp::Eq, n, zero), zero, y), t);
  }));
}

void lowerGlobalLpPool(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "GlobalLpPool input");
  int64_t p = c.node.attrInt("p", 2);
  DType t = x.dtype, acc = accOf(t);
  std::vector<int> axes;
  for (int d = 2; d < x.rank(); ++d)
    axes.push_back(d);
  LTensor s =
      c.reduce(x, axes, true, ReduceOp::Sum, acc, [=](VRef v) { return lpTerm(v, p, acc); });
  c.out(0, mapUnary(c, s, [=](VRef v) { return loop::cast(lpRoot(v, p, acc), t); }));
}

void lowerLpPool(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "LpPool input");
  int64_t p = c.node.attrInt("p", 2);
  std::vector<int64_t> kernel = c.node.attrInts("kernel_shape");
  int n = x.rank() - 2;
  if ((int)kernel.size() != n)
    fail("{}: kernel_shape has {} dims for {} spatial dims", c.node.describe(), kernel.size(), n);
  bool ceilMode = c.node.attrInt("ceil_mode", 0) != 0;
  sym::Context &ctx = c.ctx();
  Window geo = windowGeometry(c, x.shape, constants(ctx, kernel), ceilMode);
  const std::vector<int64_t> &strides = geo.strides, &dil = geo.dilations;
  const std::vector<sym::Expr> &pb = geo.padsBegin, &out = geo.out;
  DType t = x.dtype, acc = accOf(t);
  LTensor src = x.cheap ? x : c.realize(x);
  ir::Shape outShape{x.shape[0], x.shape[1]};
  for (auto &o : out)
    outShape.push_back(o);
  ir::Shape winShape = outShape;
  for (int64_t k : kernel)
    winShape.push_back(ctx.constant(k));
  sym::Context *cx = &ctx;
  LTensor win = c.pointwise(acc, winShape, [=](const Index &i) {
    Index s{i[0], i[1]};
    VRef inside;
    for (int d = 0; d < n; ++d) {
      sym::Expr pos = i[2 + d] * strides[d] + i[2 + n + d] * dil[d] - pb[d];
      sym::Expr size = x.shape[2 + d];
      s.push_back(sym::max(sym::min(pos, size - 1), cx->constant(0)));
      VRef ok = bin(BinaryOp::And, bin(BinaryOp::Ge, sv(pos), i64(0)),
                    bin(BinaryOp::Lt, sv(pos), sv(size)));
      inside = inside ? bin(BinaryOp::And, inside, ok) : ok;
    }
    return loop::select(inside, lpTerm(src.load(s), p, acc), loop::constant(acc, 0));
  });
  std::vector<int> axes;
  for (int d = 0; d < n; ++d)
    axes.push_back(2 + n + d);
  LTensor sum = c.reduce(win, axes, false, ReduceOp::Sum, acc);
  c.out(0, mapUnary(c, sum, [=](VRef v) { return loop::cast(lpRoot(v, p, acc), t); }));
}

void lowerLRN(OpCtx &c) {
  LTensor x = c.in(0);
  requireFloat(c, x, "LRN input");
  if (x.rank() < 2) fail("{}: input must have rank >= 2", c.node.describe());
  double alpha = c.node.attrFloat("alpha", 1e-4f), beta = c.node.attrFloat("beta", 0.75f);
  double bias = c.node.attrFloat("bias", 1.0f);
  int64_t size = c.node.attrInt("size", 0);
  if (size <= 0) fail("{}: size must be positive", c.node.describe());
  DType t = x.dtype, acc = accOf(t);
  int rank = x.rank();
  int64_t lo = (size - 1) / 2;
  ir::Shape win = x.shape;
  win.push_back(c.ctx().constant(size));
  sym::Expr C = x.shape[1];
  sym::Context *cx = &c.ctx();
  LTensor src = x.cheap ? x : c.realize(x);
  LTensor w = c.pointwise(acc, win, [=](const Index &i) {
    Index s(i.begin(), i.begin() + rank);
    sym::Expr ch = i[1] - lo + i[rank];
    s[1] = sym::max(sym::min(ch, C - 1), cx->constant(0));
    VRef ok =
        bin(BinaryOp::And, bin(BinaryOp::Ge, sv(ch), i64(0)), bin(BinaryOp::Lt, sv(ch), sv(C)));
    VRef v = loop::cast(src.load(s), acc);
    return loop::select(ok, bin(BinaryOp::Mul, v, v), loop::constant(acc, 0));
  });
  LTensor sq = c.reduce(w, {rank}, false, ReduceOp::Sum, acc);
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    VRef d = bin(BinaryOp::Add, loop::constant(acc, bias),
                 bin(BinaryOp::Mul, loop::constant(acc, alpha / (double)size), sq.load(i)));
    VRef den = bin(BinaryOp::Pow, d, loop::constant(acc, beta));
    return loop::cast(bin(BinaryOp::Div, loop::cast(src.load(i), acc), den), t);
  }));
}

} // namespace

void registerNormalizationOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"InstanceNormalization", 1, lowerInstanceNorm},
                        {"MeanVarianceNormalization", 9, lowerMVN},
                        {"LpNormalization", 1, lowerLpNormalization},
                        {"GlobalLpPool", 1, lowerGlobalLpPool},
                        {"LpPool", 1, lowerLpPool},
                        {"LRN", 1, lowerLRN},
                    });
}

} // namespace kiln::lower
