#include "sched/schedule.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

namespace kiln::sched {

void unrollSmallReductions(loop::Program &p, sym::Context &ctx, int64_t maxTaps) {
  for (auto &kp : p.kernels) {
    loop::Kernel &k = *kp;
    if (k.kind != loop::KernelKind::Reduction || k.rvars.empty()) continue;
    loop::BinaryOp op;
    switch (k.rop) {
    case loop::ReduceOp::Sum:
      op = loop::BinaryOp::Add;
      break;
    case loop::ReduceOp::Prod:
      op = loop::BinaryOp::Mul;
      break;
    case loop::ReduceOp::Max:
      op = loop::BinaryOp::Max;
      break;
    case loop::ReduceOp::Min:
      op = loop::BinaryOp::Min;
      break;
    default:
      continue; // arg reductions keep their index bookkeeping
    }
    int64_t taps = 1;
    bool isStatic = true;
    for (const sym::Expr &r : k.rsizes) {
      isStatic &= r.isConst();
      taps *= r.isConst() ? r->value : 0;
    }
    if (!isStatic || taps < 1 || taps > maxTaps || loop::hasIndirect(k.body)) continue;
    // Row-major walk over the taps, combining left to right as the loop would.
    loop::VRef acc;
    std::vector<int64_t> idx(k.rvars.size(), 0);
    for (int64_t t = 0; t < taps; ++t) {
      std::map<const sym::Node *, sym::Expr> repl;
      for (size_t d = 0; d < k.rvars.size(); ++d)
        repl[k.rvars[d].node()] = ctx.constant(idx[d]);
      loop::VRef tap = loop::substituteSyms(k.body, repl);
      acc = acc ? loop::binary(op, acc, tap) : tap;
      for (size_t d = idx.size(); d-- > 0;) {
        if (++idx[d] < k.rsizes[d]->value) break;
        idx[d] = 0;
      }
    }
    k.kind = loop::KernelKind::Pointwise;
    k.body = loop::cast(acc, k.out->dtype);
    k.rvars.clear();
    k.rsizes.clear();
  }
}

namespace {

/// Whether k produces run-time shape values (a value kernel, or an extern with a SymbolOut
/// argument). Such a kernel stays: later shapes, not only later loads, depend on it.
bool writesShapeValues(const loop::Kernel &k) {
  if (!k.valueOut.empty()) return true;
  if (k.kind != loop::KernelKind::Extern) return false;
  return std::any_of(k.ext.args.begin(), k.ext.args.end(), [](const loop::ExternArg &a) {
    return a.kind == loop::ExternArg::Kind::SymbolOut;
  });
}

} // namespace

void eliminateDeadKernels(loop::Program &p) {
  std::set<const loop::Buffer *> needed;
  std::vector<bool> keep(p.kernels.size(), false);
  for (size_t i = p.kernels.size(); i-- > 0;) {
    loop::Kernel &k = *p.kernels[i];
    bool live = writesShapeValues(k);
    for (loop::Buffer *b : k.writes())
      live |= b->kind == loop::BufferKind::Output || needed.count(b);
    if (!live) continue;
    keep[i] = true;
    for (loop::Buffer *b : k.reads())
      needed.insert(b);
  }
  std::vector<std::unique_ptr<loop::Kernel>> kept;
  for (size_t i = 0; i < p.kernels.size(); ++i)
    if (keep[i]) kept.push_back(std::move(p.kernels[i]));
  p.kernels = std::move(kept);
  for (size_t i = 0; i < p.kernels.size(); ++i)
    p.kernels[i]->id = static_cast<int>(i);
}

namespace {

/// Outer dims a reduction's result is indexed by: its shape without trailing 1s.
size_t outerRankOf(const loop::Kernel &k) {
  size_t r = k.out->shape.size();
  while (r > 0 && k.out->shape[r - 1].isConst(1))
    --r;
  return r;
}

/// Does every load in v of a buffer in `produced` read it exactly at the outer point
/// (vars[0..rank), zeros after)? `unit` maps the reader's loop variables of extent 1 to 0:
/// a keepdims reduction's [.., 1] result read at [.., i] with i < 1 is still the outer point.
bool readsAtOuterPoint(const loop::VRef &v, const std::set<const loop::Buffer *> &produced,
                       const std::vector<sym::Expr> &vars, size_t rank,
                       const std::map<const sym::Node *, sym::Expr> &unit, sym::Context &ctx) {
  if (v->kind == loop::VKind::Load && produced.count(v->buf)) {
    if (!v->indirect.empty()) return false;
    const ir::Shape &shape = v->buf->shape;
    if (shape.size() < rank) return false;
    sym::Expr idx = ctx.constant(0);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (d >= rank && !shape[d].isConst(1)) return false;
      idx = idx * shape[d] + (d < rank ? vars[d] : ctx.constant(0));
    }
    if (idx != v->sym && (unit.empty() || idx != sym::substitute(v->sym, unit))) return false;
  }
  for (auto &[var, iv] : v->indirect)
    if (!readsAtOuterPoint(iv, produced, vars, rank, unit, ctx)) return false;
  for (const loop::VRef &a : v->args)
    if (!readsAtOuterPoint(a, produced, vars, rank, unit, ctx)) return false;
  return true;
}

/// Whether grouping reads extent-1 loop variables as 0: Target::groupUnitVars, or
/// KILN_GROUP_UNIT_VARS=1 / =0 for CPU compiles (A/B timing of grouped and ungrouped kernels;
/// docs/perf.md).
bool unitVarsWanted(const Target &t) {
  const char *v = std::getenv("KILN_GROUP_UNIT_VARS");
  if (t.device != DeviceKind::Cpu || !v) return t.groupUnitVars;
  return std::string(v) == "1";
}

bool canJoin(const loop::KernelGroup &g, const loop::Kernel &k,
             const std::set<const loop::Buffer *> &produced, sym::Context &ctx, bool unitVars) {
  // A value kernel runs alone: the wrapper reads its values right after it.
  if (k.kind == loop::KernelKind::Extern || k.kind == loop::KernelKind::Call ||
      k.kind == loop::KernelKind::Attention || !k.valueOut.empty() || k.vars.size() < g.outerRank)
    return false;
  const ir::Shape &lead = g.kernels.front()->out->shape;
  for (size_t d = 0; d < g.outerRank; ++d)
    if (!sym::provablyEqual(k.out->shape[d], lead[d])) return false;
  bool readsGroup = false;
  for (loop::Buffer *b : k.reads())
    readsGroup |= produced.count(b) != 0;
  if (!readsGroup) return false;
  std::map<const sym::Node *, sym::Expr> unit;
  if (unitVars)
    for (size_t d = g.outerRank; d < k.vars.size() && d < k.out->shape.size(); ++d)
      if (k.out->shape[d].isConst(1)) unit[k.vars[d].node()] = ctx.constant(0);
  return readsAtOuterPoint(k.body, produced, k.vars, g.outerRank, unit, ctx);
}

} // namespace

void formGroups(loop::Program &p, sym::Context &ctx, const Target &t) {
  p.groups.clear();
  std::set<const loop::Buffer *> produced;
  for (auto &kp : p.kernels) {
    loop::Kernel &k = *kp;
    if (p.runsBeforeRun(k)) continue; // bind_shapes runs it, before the run
    if (!p.groups.empty()) {
      loop::KernelGroup &g = p.groups.back();
      if (g.outerRank > 0 && !k.scatterIndex && canJoin(g, k, produced, ctx, unitVarsWanted(t))) {
        g.kernels.push_back(&k);
        produced.insert(k.out);
        continue;
      }
    }
    loop::KernelGroup g;
    g.kernels.push_back(&k);
    produced.clear();
    if (k.kind == loop::KernelKind::Reduction) {
      g.outerRank = outerRankOf(k);
      produced.insert(k.out);
    }
    p.groups.push_back(g);
  }
  scheduleGroups(p, ctx, t);
}

MemoryPlan planMemory(const loop::Program &p, sym::Context &ctx) {
  // The buffers each group writes first, in the order the program writes them, never in
  // pointer order: the heap's addresses differ with what ran before (a warm object cache reads
  // its files), and slots picked in their order made a warm compile's wrapper differ from a
  // cold one's, which then missed the cache.
  std::map<const loop::Buffer *, size_t> lastUse;
  std::set<const loop::Buffer *> written;
  std::vector<std::vector<const loop::Buffer *>> definedIn(p.groups.size());
  for (size_t i = 0; i < p.groups.size(); ++i) {
    for (const loop::Kernel *kp : p.groups[i].kernels) {
      const loop::Kernel &k = *kp;
      for (loop::Buffer *b : k.reads())
        lastUse[b] = i;
      for (loop::Buffer *b : k.writes())
        if (written.insert(b).second) definedIn[i].push_back(b);
    }
  }
  std::vector<std::vector<const loop::Buffer *>> lastReadIn(p.groups.size());
  for (auto &[b, last] : lastUse)
    lastReadIn[last].push_back(b);
  MemoryPlan plan;
  std::vector<bool> slotFree;
  for (size_t i = 0; i < p.groups.size(); ++i) {
    for (const loop::Buffer *b : definedIn[i]) {
      if (b->kind != loop::BufferKind::Intermediate) continue;
      sym::Expr bytes = b->numel(ctx) * dtypeSize(b->dtype);
      int pick = -1;
      for (size_t s = 0; s < plan.slots.size() && pick < 0; ++s)
        if (slotFree[s] && sym::provablyEqual(plan.slots[s].bytes, bytes))
          pick = static_cast<int>(s);
      for (size_t s = 0; s < plan.slots.size() && pick < 0; ++s)
        if (slotFree[s] && sym::provablyGE(plan.slots[s].bytes, bytes)) pick = static_cast<int>(s);
      if (pick < 0) {
        plan.slots.push_back({bytes});
        slotFree.push_back(false);
        pick = static_cast<int>(plan.slots.size() - 1);
      }
      slotFree[pick] = false;
      plan.slotOf[b] = pick;
    }
    for (const loop::Buffer *b : lastReadIn[i]) {
      auto it = plan.slotOf.find(b);
      if (it != plan.slotOf.end()) slotFree[it->second] = true;
    }
    // A buffer written but never read frees right after its kernel.
    for (const loop::Buffer *b : definedIn[i]) {
      auto it = plan.slotOf.find(b);
      if (!lastUse.count(b) && it != plan.slotOf.end()) slotFree[it->second] = true;
    }
  }
  return plan;
}

} // namespace kiln::sched
