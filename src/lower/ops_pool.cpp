// Pooling as reductions over the window: MaxPool (with its Indices output), AveragePool,
// GlobalMaxPool and GlobalAveragePool.
#include "lower/ops_common.h"
#include "lower/window.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

/// MaxPool's Indices output: the flat input offset (over N, C and the spatial dims) of the
/// first maximum in window scan order. Positions in a window rise with the scan, so the
/// first hit is the smallest row-major offset; storage_order 1 reports it column-major.
LTensor maxPoolIndices(OpCtx &c, const LTensor &src, const LTensor &mx, const Window &w,
                       const std::vector<int64_t> &kernel) {
  int64_t order = c.node.attrInt("storage_order", 0);
  if (order != 0 && order != 1) fail("{}: storage_order {} is not valid", c.node.describe(), order);
  int spatial = src.rank() - 2;
  sym::Context *cx = &c.ctx();
  ir::Shape xs = src.shape, winShape = mx.shape;
  for (int64_t kd : kernel)
    winShape.push_back(cx->constant(kd));
  LTensor hits = c.pointwise(DType::Int64, winShape, [=](const Index &i) {
    Index s{i[0], i[1]};
    VRef inside;
    sym::Expr flat = cx->constant(0);
    for (int d = 0; d < spatial; ++d) {
      sym::Expr pos =
          i[2 + d] * w.strides[d] + i[2 + spatial + d] * w.dilations[d] - w.padsBegin[d];
      sym::Expr size = xs[2 + d];
      s.push_back(sym::max(sym::min(pos, size - 1), cx->constant(0)));
      flat = flat * size + pos;
      VRef ok = loop::binary(
          BinaryOp::And,
          loop::binary(BinaryOp::Ge, loop::symInt(pos), loop::constantInt(DType::Int64, 0)),
          loop::binary(BinaryOp::Lt, loop::symInt(pos), loop::symInt(size)));
      inside = inside ? loop::binary(BinaryOp::And, inside, ok) : ok;
    }
    Index o(i.begin(), i.begin() + 2 + spatial);
    VRef hit =
        loop::binary(BinaryOp::And, inside, loop::binary(BinaryOp::Eq, src.load(s), mx.load(o)));
    return loop::select(hit, loop::symInt(flat), loop::constantInt(DType::Int64, INT64_MAX));
  });
  std::vector<int> axes;
  for (int d = 0; d < spatial; ++d)
    axes.push_back(2 + spatial + d);
  LTensor first = c.reduce(hits, axes, false, ReduceOp::Min, DType::Int64);
  return c.pointwise(DType::Int64, mx.shape, [=](const Index &i) {
    sym::Expr plane = product(*cx, xs, 2, xs.size());
    VRef r = first.load(i);
    if (order == 1) { // re-encode the spatial offset with the first spatial dim fastest
      VRef col = loop::constantInt(DType::Int64, 0);
      sym::Expr stride = plane;
      for (int d = spatial - 1; d >= 0; --d) {
        stride = sym::floorDiv(stride, xs[2 + d]);
        VRef coord = loop::binary(BinaryOp::Mod, r, loop::symInt(xs[2 + d]));
        r = loop::binary(BinaryOp::Div, r, loop::symInt(xs[2 + d]));
        col = loop::binary(BinaryOp::Add, col,
                           loop::binary(BinaryOp::Mul, coord, loop::symInt(stride)));
      }
      r = col;
    }
    return loop::binary(BinaryOp::Add, r, loop::symInt((i[0] * xs[1] + i[1]) * plane));
  });
}

void lowerPool(OpCtx &c) {
  LTensor x = c.in(0);
  bool isMax = c.node.op == "MaxPool";
  bool wantIndices =
      isMax && c.node.outputs.size() > 1 && c.node.outputs[1] && !c.node.outputs[1]->name.empty();
  std::vector<int64_t> kernel = c.node.attrInts("kernel_shape");
  int spatial = x.rank() - 2;
  if (spatial < 1)
    fail("{}: the input must be N x C x spatial dims (rank 3 or more), got rank {}",
         c.node.describe(), x.rank());
  if ((int)kernel.size() != spatial)
    fail("{}: kernel_shape has {} dims for {} spatial dims", c.node.describe(), kernel.size(),
         spatial);
  bool ceilMode = c.node.attrInt("ceil_mode", 0) != 0;
  Window w = windowGeometry(c, x.shape, constants(c.ctx(), kernel), ceilMode);
  bool countPad = c.node.attrInt("count_include_pad", 0) != 0;
  LTensor src = x.cheap ? x : c.realize(x);
  sym::Context &ctx = c.ctx();
  ir::Shape outShape{x.shape[0], x.shape[1]};
  for (auto &o : w.out)
    outShape.push_back(o);
  // A window tensor [N, C, out..., k...] reduced over its k axes.
  ir::Shape winShape = outShape;
  for (int64_t kd : kernel)
    winShape.push_back(ctx.constant(kd));
  DType t = x.dtype;
  sym::Context *cx = &ctx;
  LTensor win = c.pointwise(t, winShape, [=](const Index &i) {
    Index s{i[0], i[1]};
    VRef inside;
    for (int d = 0; d < spatial; ++d) {
      sym::Expr pos =
          i[2 + d] * w.strides[d] + i[2 + spatial + d] * w.dilations[d] - w.padsBegin[d];
      sym::Expr size = x.shape[2 + d];
      s.push_back(sym::max(sym::min(pos, size - 1), cx->constant(0)));
      VRef ok = loop::binary(
          BinaryOp::And,
          loop::binary(BinaryOp::Ge, loop::symInt(pos), loop::constantInt(DType::Int64, 0)),
          loop::binary(BinaryOp::Lt, loop::symInt(pos), loop::symInt(size)));
      inside = inside ? loop::binary(BinaryOp::And, inside, ok) : ok;
    }
    VRef pad = isMax ? loop::constant(t, -INFINITY) : loop::constant(t, 0);
    return loop::select(inside, src.load(s), pad);
  });
  std::vector<int> axes;
  for (int d = 0; d < spatial; ++d)
    axes.push_back(2 + spatial + d);
  if (isMax && x.channelsLast && !wantIndices) {
    // Channels-last input (a conv's output): reduce in physical order [N, out..., C] so
    // reads are contiguous over C, and hand the next conv a channels-last buffer.
    ir::Shape physWin = channelsLastShape(outShape);
    for (int64_t kd : kernel)
      physWin.push_back(ctx.constant(kd));
    int rank = static_cast<int>(outShape.size());
    LTensor physView = c.pointwise(t, physWin, [=](const Index &p) {
      Index logical{p[0], p[rank - 1]};
      logical.insert(logical.end(), p.begin() + 1, p.begin() + rank - 1);
      logical.insert(logical.end(), p.begin() + rank, p.end());
      return win.load(logical);
    });
    LTensor r = c.reduce(physView, axes, false, ReduceOp::Max, t);
    c.out(0, fromChannelsLastBuffer(ctx, r.buffer, outShape));
    return;
  }
  if (isMax) {
    LTensor mx = c.reduce(win, axes, false, ReduceOp::Max, t);
    c.out(0, mx);
    if (wantIndices) c.out(1, maxPoolIndices(c, src, mx, w, kernel));
    return;
  }
  DType acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  LTensor sum = c.reduce(win, axes, false, ReduceOp::Sum, acc);
  c.out(0, c.pointwise(t, outShape, [=](const Index &i) {
    sym::Expr count = cx->constant(1);
    for (int d = 0; d < spatial; ++d) {
      sym::Expr start = i[2 + d] * w.strides[d] - w.padsBegin[d];
      sym::Expr end = start + (kernel[d] - 1) * w.dilations[d] + 1;
      sym::Expr size = x.shape[2 + d];
      sym::Expr lo = countPad ? sym::max(start, cx->constant(0) - w.padsBegin[d])
                              : sym::max(start, cx->constant(0));
      sym::Expr hi = countPad ? sym::min(end, size + w.padsEnd[d]) : sym::min(end, size);
      // Count of taps (stride = dilation) inside [lo, hi).
      sym::Expr taps = sym::floorDiv(hi - start + (w.dilations[d] - 1), w.dilations[d]) -
                       sym::floorDiv(lo - start + (w.dilations[d] - 1), w.dilations[d]);
      count = count * taps;
    }
    return loop::cast(
        loop::binary(BinaryOp::Div, sum.load(i), loop::cast(loop::symInt(count), acc)), t);
  }));
}

void lowerGlobalPool(OpCtx &c) {
  LTensor x = c.in(0);
  std::vector<int> axes;
  for (int d = 2; d < x.rank(); ++d)
    axes.push_back(d);
  if (c.node.op == "GlobalMaxPool") {
    c.out(0, c.reduce(x, axes, true, ReduceOp::Max, x.dtype));
    return;
  }
  DType t = x.dtype, acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  sym::Expr n = product(c.ctx(), x.shape, 2, x.shape.size());
  LTensor s = c.reduce(x, axes, true, ReduceOp::Sum, acc);
  c.out(0, mapUnary(c, s, [=](VRef v) {
          return loop::cast(loop::binary(BinaryOp::Div, v, loop::cast(loop::symInt(n), acc)), t);
        }));
}

} // namespace

void registerPoolOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"MaxPool", 1, lowerPool},
                        {"AveragePool", 1, lowerPool},
                        {"GlobalAveragePool", 1, lowerGlobalPool},
                        {"GlobalMaxPool", 1, lowerGlobalPool},
                    });
}

} // namespace kiln::lower
