// TopK by ranking: each element's rank along the axis is the number of elements that
// beat it (ties: lower index first, as ONNX specifies), then output slot r gathers the
// element ranked r. O(n^2) per slice — fine for the small axes TopK is used on, and it
// needs no sorting state in the loop IR. k may be a constant, a run-time input or a value
// the model computes.
#include "lower/ops_common.h"

#include <cmath>

namespace kiln::lower {

namespace {

using loop::ReduceOp;

void lowerTopK(OpCtx &c) {
  LTensor x = c.in(0);
  int axis = c.normAxis(c.node.attrInt("axis", -1), x.rank());
  bool largest = c.node.attrInt("largest", 1) != 0;
  sym::Expr n = x.shape[axis];
  // A k the model computes (min(K, number kept) after NMS) is a late symbol checked
  // against the axis length, which also bounds the outputs' allocation.
  sym::Expr k = c.node.opset < 10 ? c.ctx().constant(c.node.attrInt("k", 1))
                                  : c.requireScalarSymIn(1, "k", 0, n);
  c.guardEqual(sym::min(k, n), k, "k must not exceed the axis length");
  LTensor src = x.cheap ? x : c.realize(x);
  DType t = x.dtype;
  int rank = x.rank();
  // beats[..., j, ..., i] = element i comes before element j.
  ir::Shape pairShape = x.shape;
  pairShape.push_back(n);
  LTensor beats = c.pointwise(DType::Int64, pairShape, [=](const Index &p) {
    Index at(p.begin(), p.end() - 1), other = at;
    other[axis] = p[rank];
    VRef xj = src.load(at), xi = src.load(other);
    VRef better = loop::binary(largest ? BinaryOp::Gt : BinaryOp::Lt, xi, xj);
    VRef tie =
        loop::binary(BinaryOp::And, loop::binary(BinaryOp::Eq, xi, xj),
                     loop::binary(BinaryOp::Lt, loop::symInt(p[rank]), loop::symInt(p[axis])));
    return loop::cast(loop::binary(BinaryOp::Or, better, tie), DType::Int64);
  });
  LTensor ranks = c.realize(c.reduce(beats, {rank}, false, ReduceOp::Sum, DType::Int64));
  ir::Shape outShape = x.shape;
  outShape[axis] = k;
  ir::Shape pickShape = outShape;
  pickShape.push_back(n);
  auto picked = [&](bool indices) {
    DType acc = indices ? DType::Int64 : t;
    LTensor cand = c.pointwise(acc, pickShape, [=](const Index &p) {
      Index at(p.begin(), p.end() - 1);
      at[axis] = p[rank];
      VRef hit = loop::binary(BinaryOp::Eq, ranks.load(at), loop::symInt(p[axis]));
      VRef v = indices ? loop::symInt(p[rank]) : src.load(at);
      return loop::select(hit, v,
                          indices || !isFloat(t) ? loop::constantInt(acc, 0)
                                                 : loop::constant(acc, -INFINITY));
    });
    // Exactly one candidate matches: sum for integers, max for floats (keeps -0.0).
    ReduceOp op = indices || !isFloat(t) ? ReduceOp::Sum : ReduceOp::Max;
    return c.reduce(cand, {rank}, false, op, acc);
  };
  c.out(0, picked(false));
  c.out(1, picked(true));
}

} // namespace

void registerTopKOps(std::vector<OpInfo> &r) {
  r.push_back({"TopK", 1, lowerTopK});
}

} // namespace kiln::lower
