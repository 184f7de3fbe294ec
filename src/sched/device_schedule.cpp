// Per-device scheduling decisions, recorded in each KernelGroup for the printers: on the
// CPU which loop nests open an OpenMP region, on CUDA how a group maps onto threads.
#include "sched/schedule.h"
#include "sched/tuning.h"

#include <algorithm>
#include <map>
#include <set>

namespace kiln::sched {

namespace {

sym::Expr workOf(sym::Context &ctx, const loop::Kernel &k) {
  return loop::product(ctx, k.out->shape) * loop::product(ctx, k.rsizes);
}

bool smallConst(sym::Expr e, int64_t limit) {
  return e.isConst() && e->value < limit;
}

/// A pointwise kernel whose innermost output dim has 2-4 elements (RGB channels, box
/// coordinates) and whose next dim is wider: a simd loop over the tiny dim runs scalar (GCC
/// leaves a 3-trip loop of strided loads alone), so the printer unrolls it inside a simd loop
/// over the dim above. Measured on the NCHW -> NHWC copy of a 3x224x224 image (Zen 4):
/// 0.106 ms as printed before, 0.014 ms unrolled.
int unrollInnerExtent(const loop::Kernel &k, size_t shared) {
  const size_t rank = k.vars.size();
  if (k.kind != loop::KernelKind::Pointwise || k.scatterIndex || rank < 2 + shared) return 0;
  const sym::Expr &inner = k.out->shape[rank - 1], &next = k.out->shape[rank - 2];
  if (!inner.isConst() || inner->value < 2 || inner->value > 4) return 0;
  if (next.isConst() && next->value < 8) return 0;
  return static_cast<int>(inner->value);
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

void collectLoads(const loop::VRef &v, std::set<const loop::VNode *> &seen,
                  std::vector<const loop::VNode *> &out) {
  if (!seen.insert(v.get()).second) return;
  if (v->kind == loop::VKind::Load) out.push_back(v.get());
  for (auto &[var, iv] : v->indirect)
    collectLoads(iv, seen, out);
  for (const loop::VRef &a : v->args)
    collectLoads(a, seen, out);
}

/// How an index changes when `var` grows by one (an expression; constant when affine).
sym::Expr stepOf(const sym::Expr &index, const sym::Expr &var, sym::Context &ctx) {
  std::map<const sym::Node *, sym::Expr> next{{var.node(), var + ctx.constant(1)}};
  return sym::substitute(index, next) - index;
}

/// How a load's index changes when `var` grows by one.
sym::Expr stepAlong(const loop::VNode *load, const sym::Expr &var, sym::Context &ctx) {
  return stepOf(load->sym, var, ctx);
}

bool stepsByOne(const loop::VNode *load, const sym::Expr &var, sym::Context &ctx) {
  return stepAlong(load, var, ctx).isConst(1);
}

/// Iterations of the last shared loop per simd block (simdSharedBlock): a few vectors, so the
/// blocks still spread over the threads.
constexpr int64_t kSimdSharedBlock = 64;

/// Whether a fused group's last shared loop should be its simd loop: every member stores and
/// loads contiguously along it (step 1, no gathers), at least one member is a reduction whose
/// innermost reduced dim is strided (channels-last spatial sums), and no member unrolls an
/// inner dim. There the members' own simd loops would step across rows: MobileNetV2's global
/// average pool (7 x 7 x 1280 channels-last) ran 70 us that way on Zen 3, GCC keeping one
/// scalar sum per channel; vectorized across channels, a standalone copy ran 8x faster.
bool simdAlongLastShared(const loop::KernelGroup &g, size_t shared,
                         const std::vector<int> &memberUnrollInner, sym::Context &ctx) {
  if (shared == 0) return false;
  const sym::Expr &extent = g.kernels.front()->out->shape[shared - 1];
  if (extent.isConst() && extent->value < 16) return false;
  if (std::any_of(memberUnrollInner.begin(), memberUnrollInner.end(), [](int u) { return u != 0; }))
    return false;
  auto contiguousOrFixed = [](const sym::Expr &step) { return step.isConst(1) || step.isConst(0); };
  bool stridedReduction = false;
  for (const loop::Kernel *k : g.kernels) {
    if (k->scatterIndex || k->vars.size() < shared) return false;
    if (k->kind != loop::KernelKind::Pointwise && k->kind != loop::KernelKind::Reduction)
      return false;
    const sym::Expr &var = k->vars[shared - 1];
    if (!stepOf(loop::linearIndex(ctx, k->vars, k->out->shape), var, ctx).isConst(1)) return false;
    const bool reduces = k->kind == loop::KernelKind::Reduction && !k->rvars.empty();
    std::set<const loop::VNode *> seen;
    std::vector<const loop::VNode *> loads;
    collectLoads(k->body, seen, loads);
    for (const loop::VNode *l : loads) {
      if (!l->indirect.empty() || !contiguousOrFixed(stepAlong(l, var, ctx))) return false;
      stridedReduction |= reduces && !contiguousOrFixed(stepAlong(l, k->rvars.back(), ctx));
    }
  }
  return stridedReduction;
}

void scheduleCpu(loop::KernelGroup &g, sym::Context &ctx, const Target &t) {
  loop::CpuSchedule &s = g.cpu;
  s.minParallelWork = t.cpuParallelMinWork;
  size_t shared = g.kernels.size() > 1 ? g.outerRank : 0;
  // Entering libgomp costs more than a small kernel itself: no region when the work is
  // known to be small.
  s.memberParallel.clear();
  s.memberUnrollInner.clear();
  for (const loop::Kernel *k : g.kernels) {
    s.memberParallel.push_back(shared == 0 && !smallConst(workOf(ctx, *k), s.minParallelWork));
    s.memberUnrollInner.push_back(unrollInnerExtent(*k, shared));
  }
  sym::Expr total = ctx.constant(0);
  for (const loop::Kernel *k : g.kernels)
    total = total + workOf(ctx, *k);
  s.groupParallel = shared > 0 && !smallConst(total, s.minParallelWork);
  s.simdSharedBlock =
      simdAlongLastShared(g, shared, s.memberUnrollInner, ctx) ? kSimdSharedBlock : 0;
}

/// Four elements per thread with 16-byte loads and stores, when the output has 4-byte
/// elements and an innermost extent of a multiple of 4 (the lanes then share the outer
/// indices). A load joins the vector loads when its index steps by exactly 1 along that
/// dim; the others (broadcasts, gathers, other dtypes) stay one scalar load per lane.
void vectorizeElementwise(loop::CudaSchedule &s, const loop::Kernel &k, sym::Context &ctx) {
  const int width = 4;
  if (k.scatterIndex || k.vars.empty() || dtypeSize(k.out->dtype) != 4 ||
      k.out->dtype == DType::Bool)
    return;
  sym::Expr inner = k.out->shape.back();
  if (!inner.isConst() || inner->value % width != 0) return;
  s.vector = width;
  std::set<const loop::VNode *> seen;
  std::vector<const loop::VNode *> loads;
  collectLoads(k.body, seen, loads);
  const sym::Expr &var = k.vars.back();
  for (const loop::VNode *l : loads) {
    if (!l->indirect.empty() || dtypeSize(l->buf->dtype) != 4 || l->buf->dtype == DType::Bool)
      continue;
    if (stepsByOne(l, var, ctx)) s.vectorLoads.push_back(l);
  }
}

/// A permute: loads contiguous along another output dim than the innermost are read
/// through shared-memory tiles so that both their reads and the output's writes are
/// coalesced. Both dims must be at least a tile wide when their sizes are known.
bool tileTranspose(loop::CudaSchedule &s, const loop::Kernel &k, sym::Context &ctx) {
  if (k.scatterIndex || k.vars.size() < 2) return false;
  std::set<const loop::VNode *> seen;
  std::vector<const loop::VNode *> loads;
  collectLoads(k.body, seen, loads);
  const size_t innerDim = k.vars.size() - 1;
  auto wide = [](const sym::Expr &e) { return !e.isConst() || e->value >= 16; };
  if (!wide(k.out->shape[innerDim])) return false;
  for (const loop::VNode *l : loads) {
    if (!l->indirect.empty() || dtypeSize(l->buf->dtype) > 8) continue;
    // Contiguous or constant along the innermost dim: coalesced or cached already.
    sym::Expr inner = stepAlong(l, k.vars[innerDim], ctx);
    if (inner.isConst(1) || inner.isConst(0)) continue;
    for (size_t d = 0; d < innerDim; ++d) {
      if (s.tileDim >= 0 && static_cast<size_t>(s.tileDim) != d) continue;
      if (!wide(k.out->shape[d]) || !stepsByOne(l, k.vars[d], ctx)) continue;
      s.tileDim = static_cast<int>(d);
      s.tileLoads.push_back(l);
      break;
    }
    if (s.tileLoads.size() == 4) break; // 4 tiles of 32x33 doubles fit in 34 KiB
  }
  return s.tileDim >= 0;
}

int blockFor(sym::Expr extent, int maxBlock) {
  if (!extent.isConst()) return maxBlock;
  int b = 32;
  while (b < maxBlock && b < extent->value)
    b *= 2;
  return b;
}

/// Attention: 8 warps of 2 query rows each per block, 32-key tiles in shared memory (the
/// tiles' size bounds the head dim, Target::kMaxCudaHeadDim).
void scheduleCudaAttention(loop::KernelGroup &g, sym::Context &ctx) {
  loop::CudaSchedule &s = g.cuda;
  s.strategy = loop::CudaStrategy::FusedAttention;
  s.block = 256;
  s.rowsPerWarp = 2;
  s.keyTile = 32;
  (void)ctx; // offsets are int64: the per-head strides multiply symbolic extents
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
    if (!tileTranspose(s, k, ctx)) vectorizeElementwise(s, k, ctx);
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
    if (g.isAttention()) { // the CPU runs it through its shim (legalizeExterns)
      if (t.device == DeviceKind::Cuda) {
        scheduleCudaAttention(g, ctx);
        applyTuning(g, ctx, t);
      }
      continue;
    }
    scheduleCpu(g, ctx, t);
    if (t.device == DeviceKind::Cuda) {
      scheduleCuda(g, ctx, t);
      applyTuning(g, ctx, t);
    }
  }
}

} // namespace kiln::sched
