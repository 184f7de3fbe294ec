// Per-device scheduling decisions, recorded in each KernelGroup for the printers: on the
// CPU which loop nests open an OpenMP region, on CUDA how a group maps onto threads.
#include "sched/schedule.h"

#include <algorithm>

namespace kiln::sched {

namespace {

sym::Expr workOf(sym::Context &ctx, const loop::Kernel &k) {
  return loop::product(ctx, k.out->shape) * loop::product(ctx, k.rsizes);
}

bool smallConst(sym::Expr e, int64_t limit) {
  return e.isConst() && e->value < limit;
}

void scheduleCpu(loop::KernelGroup &g, sym::Context &ctx, const Target &t) {
  loop::CpuSchedule &s = g.cpu;
  s.minParallelWork = t.cpuParallelMinWork;
  size_t shared = g.kernels.size() > 1 ? g.outerRank : 0;
  // Entering libgomp costs more than a small kernel itself: no region when the work is
  // known to be small.
  s.memberParallel.clear();
  for (const loop::Kernel *k : g.kernels)
    s.memberParallel.push_back(shared == 0 && !smallConst(workOf(ctx, *k), s.minParallelWork));
  sym::Expr total = ctx.constant(0);
  for (const loop::Kernel *k : g.kernels)
    total = total + workOf(ctx, *k);
  s.groupParallel = shared > 0 && !smallConst(total, s.minParallelWork);
}

/// True when every element count the group touches stays below 2^31 over the symbols'
/// ranges, so 32-bit index arithmetic cannot overflow.
bool fitsInt32(sym::Context &ctx, const loop::KernelGroup &g) {
  const int64_t limit = (int64_t(1) << 31) - 1;
  auto fits = [&](sym::Expr e) { return sym::rangeOf(e).hi < limit; };
  for (const loop::Kernel *k : g.kernels) {
    if (!fits(workOf(ctx, *k))) return false;
    for (const loop::Buffer *b : k->reads())
      if (!fits(b->numel(ctx))) return false;
  }
  return true;
}

int blockFor(sym::Expr extent, int maxBlock) {
  if (!extent.isConst()) return maxBlock;
  int b = 32;
  while (b < maxBlock && b < extent->value)
    b *= 2;
  return b;
}

void scheduleCuda(loop::KernelGroup &g, sym::Context &ctx, const Target &t) {
  loop::CudaSchedule &s = g.cuda;
  s.block = t.cudaBlock;
  s.index32 = fitsInt32(ctx, g);
  const loop::Kernel &k = *g.kernels.front();
  if (g.kernels.size() > 1) {
    // Softmax / layer norm: a block per outer point keeps the row's reductions and the
    // members reading them in one block, synchronised by __syncthreads.
    s.strategy = loop::CudaStrategy::BlockPerOuter;
    sym::Expr inner = ctx.constant(0);
    for (const loop::Kernel *m : g.kernels)
      inner = sym::max(inner, loop::product(ctx, m->out->shape, g.outerRank) *
                                  loop::product(ctx, m->rsizes));
    s.block = blockFor(inner, t.cudaBlock);
    return;
  }
  if (k.kind == loop::KernelKind::Pointwise) {
    s.strategy = loop::CudaStrategy::Elementwise;
    return;
  }
  sym::Expr r = loop::product(ctx, k.rsizes);
  // A short reduction is cheaper as a serial loop per thread than a block-wide combine.
  if (smallConst(r, 33)) {
    s.strategy = loop::CudaStrategy::ThreadPerOutput;
    return;
  }
  s.strategy = loop::CudaStrategy::BlockPerOutput;
  s.block = blockFor(r, t.cudaBlock);
}

} // namespace

void scheduleGroups(loop::Program &p, sym::Context &ctx, const Target &t) {
  for (loop::KernelGroup &g : p.groups) {
    if (g.isExtern() || g.isCall()) continue;
    scheduleCpu(g, ctx, t);
    if (t.device == DeviceKind::Cuda) scheduleCuda(g, ctx, t);
  }
}

} // namespace kiln::sched
