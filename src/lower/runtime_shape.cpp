#include "lower/runtime_shape.h"

#include "lower/ops_common.h"
#include "support/error.h"

namespace kiln::lower {

namespace {

loop::VRef eq(loop::VRef a, loop::VRef b) {
  return loop::binary(loop::BinaryOp::Eq, a, b);
}

/// A 1-D int64 tensor whose element k is vals[k] (a select chain over the index).
LTensor vectorOf(OpCtx &c, std::vector<loop::VRef> vals) {
  int64_t n = static_cast<int64_t>(vals.size());
  return c.pointwise(DType::Int64, {c.ctx().constant(n)}, [vals, n](const Index &i) {
    loop::VRef r = vals.back();
    for (int64_t k = n - 2; k >= 0; --k)
      r = loop::select(eq(loop::symInt(i[0]), i64(k)), vals[k], r);
    return r;
  });
}

} // namespace

loop::VRef pickDim(const ir::Shape &dims, loop::VRef index) {
  loop::VRef v = i64(-1);
  for (size_t q = dims.size(); q-- > 0;)
    v = loop::select(eq(index, i64(static_cast<int64_t>(q))), loop::symInt(dims[q]), v);
  return v;
}

std::vector<sym::Expr> runtimeValues(OpCtx &c, const std::vector<loop::VRef> &vals, const char *tag,
                                     int64_t lo, int64_t hi, const std::vector<sym::Expr> &limits) {
  if (vals.empty()) return {};
  return c.runtimeSymbols(vectorOf(c, vals), tag, lo, hi, limits);
}

ir::Shape runtimeShape(OpCtx &c, const std::vector<loop::VRef> &dims, const char *tag,
                       const std::vector<sym::Expr> &limits) {
  return runtimeValues(c, dims, tag, 0, INT32_MAX, limits);
}

std::vector<sym::Expr> runtimeAxisFlags(OpCtx &c, size_t i, int rank) {
  LTensor axes = c.in(i);
  int64_t n = axes.rank() == 0 ? 1 : c.requireStatic(axes.shape[0], "the number of axes");
  std::vector<loop::VRef> norm;
  for (int64_t k = 0; k < n; ++k) {
    loop::VRef a =
        loop::cast(axes.load(axes.rank() ? Index{c.ctx().constant(k)} : Index{}), DType::Int64);
    norm.push_back(loop::select(loop::binary(loop::BinaryOp::Lt, a, i64(0)),
                                loop::binary(loop::BinaryOp::Add, a, i64(rank)), a));
  }
  std::vector<loop::VRef> flags;
  for (int d = 0; d < rank; ++d) {
    loop::VRef f = i64(0);
    for (const loop::VRef &a : norm)
      f = loop::select(eq(a, i64(d)), i64(1), f);
    flags.push_back(f);
  }
  if (rank == 0) return {};
  std::vector<sym::Expr> syms = runtimeValues(c, flags, "axis_flag", 0, 1);
  sym::Expr count = c.ctx().constant(0);
  for (const sym::Expr &f : syms)
    count = count + f;
  c.guardEqual(count, c.ctx().constant(n),
               fmt::format("the {} axes must be distinct and within rank {}", n, rank));
  return syms;
}

ir::Shape keptDims(OpCtx &c, const ir::Shape &dims, const std::vector<sym::Expr> &flags,
                   int64_t count, const char *tag) {
  if (count <= 0) return {};
  std::vector<loop::VRef> out;
  for (int64_t j = 0; j < count; ++j) {
    // The j-th kept dim is dims[q] for the q with flag 0 and j kept dims before it.
    loop::VRef v = i64(-1);
    sym::Expr before = c.ctx().constant(0);
    for (size_t q = 0; q < dims.size(); ++q) {
      loop::VRef hit = loop::binary(
          loop::BinaryOp::And, eq(loop::symInt(flags[q]), i64(0)),
          eq(loop::symInt(c.ctx().constant(static_cast<int64_t>(q)) - before), i64(j)));
      v = loop::select(hit, loop::symInt(dims[q]), v);
      before = before + flags[q];
    }
    out.push_back(v);
  }
  return runtimeShape(c, out, tag);
}

sym::Expr flaggedCount(sym::Context &ctx, const ir::Shape &dims,
                       const std::vector<sym::Expr> &flags) {
  sym::Expr n = ctx.constant(1);
  for (size_t d = 0; d < dims.size(); ++d)
    n = n * (flags[d] * (dims[d] - 1) + 1);
  return n;
}

LTensor reduceFlagged(OpCtx &c, const LTensor &t, const std::vector<sym::Expr> &flags,
                      loop::ReduceOp op, DType acc,
                      const std::function<loop::VRef(loop::VRef)> &pre) {
  sym::Context &ctx = c.ctx();
  ir::Shape outShape;
  for (int d = 0; d < t.rank(); ++d)
    outShape.push_back(t.shape[d] - flags[d] * (t.shape[d] - 1));
  DType outType =
      (op == loop::ReduceOp::ArgMax || op == loop::ReduceOp::ArgMin) ? DType::Int64 : acc;
  loop::Buffer *b = c.prog().newBuffer(outType, outShape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.prog().newKernel(loop::KernelKind::Reduction);
  k->origin = c.node.name;
  k->out = b;
  k->rop = op;
  k->accDtype = acc;
  Index full;
  for (int d = 0; d < t.rank(); ++d) {
    // Exactly one of the two loops has extent 1 (its variable is 0), so the sum indexes.
    sym::Expr extent = flags[d] * (t.shape[d] - 1) + 1;
    k->vars.push_back(c.lowerer().newVar("i", outShape[d]));
    sym::Expr r = c.lowerer().newVar("r", extent);
    k->rvars.push_back(r);
    k->rsizes.push_back(extent);
    full.push_back(k->vars.back() + r);
  }
  loop::VRef v = t.load(full);
  if (pre) v = pre(v);
  k->body = loop::cast(v, acc);
  return fromBuffer(ctx, b);
}

} // namespace kiln::lower
