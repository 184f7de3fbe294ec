// Deterministic split of reductions with few outputs and a long extent. With a block per
// output, a sum over a whole tensor would run on one of a GPU's hundred-odd multiprocessors;
// atomics would spread it but make the float result depend on timing. Instead the reduction
// becomes two kernels: partial results over S equal chunks, then a reduction of the S
// partials in chunk order, which is the same order on every run.
#include "sched/schedule.h"

#include <algorithm>

namespace kiln::sched {

namespace {

bool splittable(const loop::Kernel &k) {
  if (k.kind != loop::KernelKind::Reduction || k.rvars.empty()) return false;
  switch (k.rop) {
  case loop::ReduceOp::Sum:
  case loop::ReduceOp::Prod:
  case loop::ReduceOp::Max:
  case loop::ReduceOp::Min:
    return true;
  default:
    return false; // arg reductions carry an index the partials would have to keep
  }
}

/// The chunk count: the largest divisor of `extent` that keeps about `targetBlocks` blocks
/// busy over all outputs and leaves each chunk at least `minChunk` long. 1: do not split.
int64_t chunkCount(int64_t outputs, int64_t extent, const Target &t) {
  int64_t want = std::max<int64_t>(1, t.splitTargetBlocks / std::max<int64_t>(outputs, 1));
  want = std::min(want, extent / t.splitMinChunk);
  for (int64_t s = want; s >= 2; --s)
    if (extent % s == 0) return s;
  return 1;
}

} // namespace

void splitFewOutputReductions(loop::Program &p, sym::Context &ctx, const Target &t) {
  if (t.splitBelowOutputs <= 0) return;
  std::vector<std::unique_ptr<loop::Kernel>> kernels;
  for (auto &kp : p.kernels) {
    loop::Kernel &k = *kp;
    int64_t chunks = 1;
    sym::Expr extent;
    if (splittable(k)) {
      sym::Expr outputs = loop::product(ctx, k.out->shape);
      extent = loop::product(ctx, k.rsizes);
      if (outputs.isConst() && extent.isConst() && outputs->value < t.splitBelowOutputs &&
          !loop::hasIndirect(k.body))
        chunks = chunkCount(outputs->value, extent->value, t);
    }
    if (chunks < 2) {
      kernels.push_back(std::move(kp));
      continue;
    }
    int64_t chunk = extent->value / chunks;
    // Partials: the original reduction over chunk `s` only, flat index r = s * chunk + c.
    sym::Expr s = ctx.freshSymbol("_split", 0, chunks - 1);
    sym::Expr c = ctx.freshSymbol("_chunk", 0, chunk - 1);
    sym::Expr r = s * ctx.constant(chunk) + c;
    std::map<const sym::Node *, sym::Expr> repl;
    sym::Expr stride = ctx.constant(1);
    for (size_t d = k.rvars.size(); d-- > 0;) {
      sym::Expr q = sym::floorDiv(r, stride);
      repl[k.rvars[d].node()] = d == 0 ? q : sym::mod(q, k.rsizes[d]);
      stride = stride * k.rsizes[d];
    }
    ir::Shape partialShape = k.out->shape;
    partialShape.push_back(ctx.constant(chunks));
    loop::Buffer *partial = p.newBuffer(k.accDtype, partialShape, loop::BufferKind::Intermediate,
                                        k.out->label + ".partial");
    auto first = std::make_unique<loop::Kernel>();
    first->kind = loop::KernelKind::Reduction;
    first->origin = k.origin;
    first->out = partial;
    first->vars = k.vars;
    first->vars.push_back(s);
    first->body = loop::substituteSyms(k.body, repl);
    first->rvars = {c};
    first->rsizes = {ctx.constant(chunk)};
    first->rop = k.rop;
    first->accDtype = k.accDtype;
    kernels.push_back(std::move(first));
    // Then the original kernel folds the partials in chunk order.
    sym::Expr s2 = ctx.freshSymbol("_part", 0, chunks - 1);
    std::vector<sym::Expr> at = k.vars;
    at.push_back(s2);
    k.body = loop::load(partial, loop::linearIndex(ctx, at, partialShape));
    k.rvars = {s2};
    k.rsizes = {ctx.constant(chunks)};
    kernels.push_back(std::move(kp));
  }
  p.kernels = std::move(kernels);
  for (size_t i = 0; i < p.kernels.size(); ++i)
    p.kernels[i]->id = static_cast<int>(i);
}

void scheduleProgram(loop::Program &p, sym::Context &ctx, const Target &t) {
  eliminateDeadKernels(p);
  splitFewOutputReductions(p, ctx, t);
  unrollSmallReductions(p, ctx);
  formGroups(p, ctx, t);
  legalizeExterns(p, t);
}

} // namespace kiln::sched
