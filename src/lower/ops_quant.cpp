// Quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the
// integer matmul/conv family (MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv)
// as generated reductions with int32 accumulation.
#include "lower/ops_common.h"
#include "lower/window.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::binary;
using loop::cast;
using loop::constant;
using loop::ReduceOp;

/// Index `i` into a 1-D parameter of length `dim` that is either per-tensor (dim 1,
/// possibly only known at run time) or per-element along an axis.
sym::Expr paramIndex(sym::Expr dim, sym::Expr i, sym::Context &ctx) {
  if (dim.isConst(1)) return ctx.constant(0);
  return dim.isConst() ? i : i * sym::min(dim - 1, ctx.constant(1));
}

/// Per-tensor, per-axis or (opset 21, `block` > 0: p has x's rank) blocked parameter read
/// at the element's index along `axis`.
VRef paramAt(const LTensor &p, const Index &idx, int axis, sym::Context &ctx, int64_t block = 0) {
  if (p.rank() == 0) return p.load({});
  if (block > 0 && p.rank() == static_cast<int>(idx.size()) && axis >= 0) {
    Index j = idx;
    j[axis] = sym::floorDiv(idx[axis], block);
    return p.load(j);
  }
  if (axis < 0 || axis >= static_cast<int>(idx.size())) return p.load({ctx.constant(0)});
  return p.load({paramIndex(p.shape[0], idx[axis], ctx)});
}

/// The quantization axis; only meaningful (and checked) for per-axis parameters.
int quantAxis(OpCtx &c, const LTensor &x, const LTensor &scale) {
  int64_t a = c.node.attrInt("axis", 1);
  if (scale.rank() > 1) { // blocked (opset 21): scale has x's rank
    if (scale.rank() != x.rank() || c.node.attrInt("block_size", 0) <= 0)
      fail("{}: a scale of rank {} needs block_size > 0 and the input's rank {}", c.node.describe(),
           scale.rank(), x.rank());
    return c.normAxis(a, x.rank());
  }
  if (scale.rank() == 0 || scale.shape[0].isConst(1)) return -1;
  return c.normAxis(a, x.rank());
}

/// v clamped to the range of the integer type `to` (8/16-bit, int4/uint4, int2/uint2) and
/// converted.
VRef saturate(VRef v, DType to) {
  int bits = dtypeBits(to);
  double lo = isSigned(to) ? -std::ldexp(1.0, bits - 1) : 0;
  double hi = isSigned(to) ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1;
  v = binary(BinaryOp::Max, v, constant(v->dtype, lo));
  v = binary(BinaryOp::Min, v, constant(v->dtype, hi));
  return cast(v, to);
}

/// round-half-to-even(x / scale) + zp, saturated to the zero point's type; for a float8 or
/// float4 type, x / scale + zp rounded to it (saturating unless `sat` is false: Cast's rule).
VRef quantize(VRef x, VRef scale, VRef zp, DType to, bool sat = true) {
  if (minifloatFormat(to) >= 0)
    return castSaturating(
        binary(BinaryOp::Add, binary(BinaryOp::Div, x, scale), cast(zp, DType::Float32)), to, sat);
  VRef q = loop::unary(UnaryOp::Round, binary(BinaryOp::Div, x, scale));
  q = binary(BinaryOp::Add, q, cast(zp, DType::Float32));
  return saturate(q, to);
}

void lowerQuantizeLinear(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1);
  DType to = DType::UInt8;
  std::optional<LTensor> zp;
  if (c.has(2)) {
    zp = c.in(2);
    to = zp->dtype;
  }
  if (!zp && c.node.attrInt("output_dtype", 0) != 0) {
    int code = static_cast<int>(c.node.attrInt("output_dtype", 0));
    if (!dtypeFromOnnx(code, to) || dtypeSize(to) > 2 || !(isInteger(to) || isFloat(to)) ||
        (isFloat(to) && minifloatFormat(to) < 0))
      c.unsupported(fmt::format("QuantizeLinear to {}", onnxTypeName(code)));
  }
  if (!isInteger(to) && minifloatFormat(to) < 0)
    fail("{}: the zero point's type {} is not a quantized type (8/16/4/2-bit integers, float8, "
         "float4e2m1)",
         c.node.describe(), dtypeName(to));
  bool sat = c.node.attrInt("saturate", 1) != 0;
  int axis = quantAxis(c, x, scale);
  int64_t block = c.node.attrInt("block_size", 0);
  sym::Context *ctx = &c.ctx();
  c.out(0, c.pointwise(to, x.shape, [=](const Index &i) {
    VRef s = cast(paramAt(scale, i, axis, *ctx, block), DType::Float32);
    VRef z = zp ? paramAt(*zp, i, axis, *ctx, block) : loop::constantInt(to, 0);
    return quantize(cast(x.load(i), DType::Float32), s, z, to, sat);
  }));
}

void lowerDequantizeLinear(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1);
  std::optional<LTensor> zp;
  if (c.has(2)) zp = c.in(2);
  int axis = quantAxis(c, x, scale);
  int64_t block = c.node.attrInt("block_size", 0);
  sym::Context *ctx = &c.ctx();
  DType t = scale.dtype;
  // Integers subtract the zero point exactly in int64; float8/float4 values in float32.
  DType diff = isFloat(x.dtype) ? DType::Float32 : DType::Int64;
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    VRef v = cast(x.load(i), diff);
    if (zp) v = binary(BinaryOp::Sub, v, cast(paramAt(*zp, i, axis, *ctx, block), diff));
    return binary(BinaryOp::Mul, cast(v, t), paramAt(scale, i, axis, *ctx, block));
  }));
}

void lowerDynamicQuantizeLinear(OpCtx &c) {
  LTensor x = c.in(0);
  if (x.dtype != DType::Float32)
    fail("{}: the input must be float32, got {}", c.node.describe(), dtypeName(x.dtype));
  std::vector<int> all;
  for (int d = 0; d < x.rank(); ++d)
    all.push_back(d);
  LTensor mx = c.realize(c.reduce(x, all, false, ReduceOp::Max, DType::Float32));
  LTensor mn = c.realize(c.reduce(x, all, false, ReduceOp::Min, DType::Float32));
  LTensor scale = c.realize(c.pointwise(DType::Float32, {}, [=](const Index &) {
    VRef hi = binary(BinaryOp::Max, mx.load({}), constant(DType::Float32, 0));
    VRef lo = binary(BinaryOp::Min, mn.load({}), constant(DType::Float32, 0));
    return binary(BinaryOp::Div, binary(BinaryOp::Sub, hi, lo), constant(DType::Float32, 255));
  }));
  LTensor zp = c.realize(c.pointwise(DType::UInt8, {}, [=](const Index &) {
    VRef lo = binary(BinaryOp::Min, mn.load({}), constant(DType::Float32, 0));
    VRef z = loop::unary(UnaryOp::Round, binary(BinaryOp::Sub, constant(DType::Float32, 0),
                                                binary(BinaryOp::Div, lo, scale.load({}))));
    return saturate(z, DType::UInt8);
  }));
  c.out(0, c.pointwise(DType::UInt8, x.shape, [=](const Index &i) {
    return quantize(x.load(i), scale.load({}), zp.load({}), DType::UInt8);
  }));
  c.out(1, scale);
  c.out(2, zp);
}

/// Zero point of an operand at a row/column (per-tensor or 1-D per-row/per-column).
VRef zeroPoint(const std::optional<LTensor> &zp, sym::Expr along, sym::Context &ctx) {
  if (!zp) return loop::constantInt(DType::Int32, 0);
  if (zp->rank() == 0 || (zp->rank() == 1 && zp->shape[0].isConst(1)))
    return cast(zp->load(Index(zp->rank(), ctx.constant(0))), DType::Int32);
  return cast(zp->load({paramIndex(zp->shape[0], along, ctx)}), DType::Int32);
}

/// Fails unless p is a scalar or a 1-D tensor of one value or of `dim` values (the values
/// along the axis it is indexed by): a longer read would leave the tensor.
void requireParamAlong(OpCtx &c, const std::optional<LTensor> &p, sym::Expr dim, const char *what) {
  if (!p || p->rank() == 0) return;
  sym::Expr n = p->shape[0];
  if (p->rank() > 1 || (n.isConst() && !n.isConst(1) && dim.isConst() && n->value != dim->value))
    fail("{}: {} has shape {}; it must be a scalar or hold 1 or {} values", c.node.describe(), what,
         ir::shapeToString(p->shape), dim.isConst() ? std::to_string(dim->value) : "N");
}

/// int32 sum_k (a[..m,k] - za) * (b[..k,n] - zb), numpy-broadcast batch dims.
LTensor integerMatMul(OpCtx &c, LTensor a, LTensor b, std::optional<LTensor> za,
                      std::optional<LTensor> zb) {
  sym::Context &ctx = c.ctx();
  if (a.rank() == 0 || b.rank() == 0)
    fail("{}: operands need at least one dim, got ranks {} and {}", c.node.describe(), a.rank(),
         b.rank());
  if (a.rank() == 1) a = reshapeView(ctx, a, {ctx.constant(1), a.shape[0]});
  bool vecB = b.rank() == 1;
  if (vecB) b = reshapeView(ctx, b, {b.shape[0], ctx.constant(1)});
  ir::Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  ir::Shape batch = broadcastShapes(ba, bb, c.node.describe());
  sym::Expr m = a.shape[a.rank() - 2], k = a.shape[a.rank() - 1], n = b.shape[b.rank() - 1];
  requireParamAlong(c, za, m, "a's zero point");
  requireParamAlong(c, zb, n, "b's zero point");
  ir::Shape full = batch;
  full.insert(full.end(), {m, n, k});
  sym::Context *cx = &ctx;
  size_t nb = batch.size();
  LTensor prod = c.pointwise(DType::Int32, full, [=](const Index &i) {
    Index ai(i.begin(), i.begin() + nb), bi = ai;
    ai.insert(ai.end(), {i[nb], i[nb + 2]});
    bi.insert(bi.end(), {i[nb + 2], i[nb + 1]});
    ir::Shape as = batch, bs = batch;
    as.insert(as.end(), {a.shape[a.rank() - 2], a.shape[a.rank() - 1]});
    bs.insert(bs.end(), {b.shape[b.rank() - 2], b.shape[b.rank() - 1]});
    VRef av = binary(BinaryOp::Sub, cast(loadBroadcast(*cx, a, as, ai), DType::Int32),
                     zeroPoint(za, i[nb], *cx));
    VRef bv = binary(BinaryOp::Sub, cast(loadBroadcast(*cx, b, bs, bi), DType::Int32),
                     zeroPoint(zb, i[nb + 1], *cx));
    return binary(BinaryOp::Mul, av, bv);
  });
  LTensor r = c.reduce(prod, {static_cast<int>(nb + 2)}, false, ReduceOp::Sum, DType::Int32);
  ir::Shape outShape = batch;
  if (ba.size() + 2 == static_cast<size_t>(a.rank()) && c.in(0).rank() != 1) outShape.push_back(m);
  if (!vecB) outShape.push_back(n);
  if (outShape.size() != r.shape.size()) r = reshapeView(ctx, r, outShape);
  return r;
}

void lowerMatMulInteger(OpCtx &c) {
  std::optional<LTensor> za, zb;
  if (c.has(2)) za = c.in(2);
  if (c.has(3)) zb = c.in(3);
  c.out(0, integerMatMul(c, c.in(0), c.in(1), za, zb));
}

/// Requantizes an int32 accumulator: round(acc * sa * sb / sy) + zy, saturated. sb is per
/// tensor or along colAxis; sa and sy per tensor or along rowAxis (QLinearMatMul's per-row
/// scales; -1: the output has no row axis, so one value).
LTensor requantize(OpCtx &c, const LTensor &acc, const LTensor &sa, const LTensor &sb,
                   const LTensor &sy, const LTensor &zy, int rowAxis, int colAxis) {
  sym::Context *cx = &c.ctx();
  DType to = zy.dtype;
  sym::Expr rows = rowAxis >= 0 ? acc.shape[rowAxis] : cx->constant(1);
  requireParamAlong(c, sa, rows, "the input scale");
  requireParamAlong(c, sy, rows, "the output scale");
  requireParamAlong(c, sb, acc.shape[colAxis], "the weight scale");
  return c.pointwise(to, acc.shape, [=](const Index &i) {
    auto scalarOr = [&](const LTensor &p, int axis) {
      if (p.rank() == 0) return cast(p.load({}), DType::Float32);
      sym::Expr at = axis >= 0 ? paramIndex(p.shape[0], i[axis], *cx) : cx->constant(0);
      return cast(p.load({at}), DType::Float32);
    };
    VRef real = binary(BinaryOp::Mul, cast(acc.load(i), DType::Float32),
                       binary(BinaryOp::Mul, scalarOr(sa, rowAxis), scalarOr(sb, colAxis)));
    return quantize(real, scalarOr(sy, rowAxis),
                    cast(zy.load(Index(zy.rank(), cx->constant(0))), DType::Int32), to);
  });
}

void lowerQLinearMatMul(OpCtx &c) {
  LTensor acc = c.realize(integerMatMul(c, c.in(0), c.in(3), c.in(2), c.in(5)));
  c.out(0, requantize(c, acc, c.in(1), c.in(4), c.in(6), c.in(7), acc.rank() - 2, acc.rank() - 1));
}

/// int32 convolution by direct summation (window tensor reduced over ic and taps).
LTensor integerConv(OpCtx &c, LTensor x, LTensor w, std::optional<LTensor> zx,
                    std::optional<LTensor> zw) {
  sym::Context &ctx = c.ctx();
  int spatial = x.rank() - 2;
  if (spatial < 1 || w.rank() != x.rank())
    fail("{}: input of rank {} and weights of rank {}: expected [N, C, d...] and [M, C/group, "
         "k...] of the same rank, at least 3",
         c.node.describe(), x.rank(), w.rank());
  std::vector<int64_t> kernel;
  for (int d = 0; d < spatial; ++d) {
    kernel.push_back(c.requireStatic(w.shape[2 + d], "the kernel size"));
  }
  int64_t groups = c.node.attrInt("group", 1);
  Window win = windowGeometry(c, x.shape, constants(ctx, kernel), false);
  const std::vector<int64_t> &strides = win.strides, &dil = win.dilations;
  const std::vector<sym::Expr> &pb = win.padsBegin, &out = win.out;
  sym::Expr icg = w.shape[1], oc = w.shape[0];
  sym::Expr ocg = sym::floorDiv(oc, groups);
  ir::Shape full{x.shape[0], oc};
  full.insert(full.end(), out.begin(), out.end());
  full.push_back(icg);
  for (int64_t k : kernel)
    full.push_back(ctx.constant(k));
  sym::Context *cx = &ctx;
  LTensor src = x.cheap ? x : c.realize(x);
  LTensor prod = c.pointwise(DType::Int32, full, [=](const Index &i) {
    sym::Expr g = sym::floorDiv(i[1], ocg);
    sym::Expr ic = g * icg + i[2 + spatial];
    Index xi{i[0], ic}, wi{i[1], i[2 + spatial]};
    VRef inside;
    for (int d = 0; d < spatial; ++d) {
      sym::Expr kd = i[3 + spatial + d];
      sym::Expr pos = i[2 + d] * strides[d] + kd * dil[d] - pb[d];
      sym::Expr size = x.shape[2 + d];
      xi.push_back(sym::max(sym::min(pos, size - 1), cx->constant(0)));
      wi.push_back(kd);
      VRef ok = binary(BinaryOp::And,
                       binary(BinaryOp::Ge, loop::symInt(pos), loop::constantInt(DType::Int64, 0)),
                       binary(BinaryOp::Lt, loop::symInt(pos), loop::symInt(size)));
      inside = inside ? binary(BinaryOp::And, inside, ok) : ok;
    }
    VRef zxv = zx ? cast(zx->load(Index(zx->rank(), cx->constant(0))), DType::Int32)
                  : loop::constantInt(DType::Int32, 0);
    VRef xv = binary(BinaryOp::Sub, cast(src.load(xi), DType::Int32), zxv);
    xv = loop::select(inside, xv, loop::constantInt(DType::Int32, 0));
    VRef wv = binary(BinaryOp::Sub, cast(w.load(wi), DType::Int32), zeroPoint(zw, i[1], *cx));
    return binary(BinaryOp::Mul, xv, wv);
  });
  std::vector<int> axes;
  for (int d = 0; d <= spatial; ++d)
    axes.push_back(2 + spatial + d);
  return c.reduce(prod, axes, false, ReduceOp::Sum, DType::Int32);
}

void lowerConvInteger(OpCtx &c) {
  std::optional<LTensor> zx, zw;
  if (c.has(2)) zx = c.in(2);
  if (c.has(3)) zw = c.in(3);
  c.out(0, integerConv(c, c.in(0), c.in(1), zx, zw));
}

void lowerQLinearConv(OpCtx &c) {
  LTensor acc = integerConv(c, c.in(0), c.in(3), c.in(2), c.in(5));
  if (c.has(8)) {
    LTensor bias = c.in(8);
    LTensor a = acc;
    acc = c.pointwise(DType::Int32, acc.shape, [=](const Index &i) {
      return binary(BinaryOp::Add, a.load(i), cast(bias.load({i[1]}), DType::Int32));
    });
  }
  acc = c.realize(acc);
  c.out(0, requantize(c, acc, c.in(1), c.in(4), c.in(6), c.in(7), 1, 1));
}

} // namespace

void registerQuantOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"QuantizeLinear", 10, lowerQuantizeLinear},
                        {"DequantizeLinear", 10, lowerDequantizeLinear},
                        {"DynamicQuantizeLinear", 11, lowerDynamicQuantizeLinear},
                        {"MatMulInteger", 10, lowerMatMulInteger},
                        {"QLinearMatMul", 10, lowerQLinearMatMul},
                        {"ConvInteger", 10, lowerConvInteger},
                        {"QLinearConv", 10, lowerQLinearConv},
                    });
}

} // namespace kiln::lower
