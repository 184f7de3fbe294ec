#include "sched/schedule.h"

#include <set>

namespace kiln::sched {

void eliminateDeadKernels(loop::Program &p) {
  std::set<const loop::Buffer *> needed;
  std::vector<bool> keep(p.kernels.size(), false);
  for (size_t i = p.kernels.size(); i-- > 0;) {
    loop::Kernel &k = *p.kernels[i];
    std::vector<loop::Buffer *> outs =
        k.kind == loop::KernelKind::Extern ? k.ext.outputs : std::vector<loop::Buffer *>{k.out};
    bool live = false;
    for (loop::Buffer *b : outs)
      live |= b->kind == loop::BufferKind::Output || needed.count(b);
    if (!live)
      continue;
    keep[i] = true;
    for (loop::Buffer *b : k.reads())
      needed.insert(b);
  }
  std::vector<std::unique_ptr<loop::Kernel>> kept;
  for (size_t i = 0; i < p.kernels.size(); ++i)
    if (keep[i])
      kept.push_back(std::move(p.kernels[i]));
  p.kernels = std::move(kept);
  for (size_t i = 0; i < p.kernels.size(); ++i)
    p.kernels[i]->id = static_cast<int>(i);
}

MemoryPlan planMemory(const loop::Program &p, sym::Context &ctx) {
  std::map<const loop::Buffer *, size_t> lastUse, firstDef;
  for (size_t i = 0; i < p.kernels.size(); ++i) {
    const loop::Kernel &k = *p.kernels[i];
    for (loop::Buffer *b : k.reads())
      lastUse[b] = i;
    std::vector<loop::Buffer *> outs =
        k.kind == loop::KernelKind::Extern ? k.ext.outputs : std::vector<loop::Buffer *>{k.out};
    for (loop::Buffer *b : outs)
      if (!firstDef.count(b))
        firstDef[b] = i;
  }
  MemoryPlan plan;
  std::vector<bool> slotFree;
  for (size_t i = 0; i < p.kernels.size(); ++i) {
    for (auto &[b, def] : firstDef) {
      if (def != i || b->kind != loop::BufferKind::Intermediate)
        continue;
      sym::Expr bytes = b->numel(ctx) * dtypeSize(b->dtype);
      int pick = -1;
      for (size_t s = 0; s < plan.slots.size() && pick < 0; ++s)
        if (slotFree[s] && sym::provablyEqual(plan.slots[s].bytes, bytes))
          pick = static_cast<int>(s);
      for (size_t s = 0; s < plan.slots.size() && pick < 0; ++s)
        if (slotFree[s] && sym::provablyGE(plan.slots[s].bytes, bytes))
          pick = static_cast<int>(s);
      if (pick < 0) {
        plan.slots.push_back({bytes});
        slotFree.push_back(false);
        pick = static_cast<int>(plan.slots.size() - 1);
      }
      slotFree[pick] = false;
      plan.slotOf[b] = pick;
    }
    for (auto &[b, last] : lastUse) {
      auto it = plan.slotOf.find(b);
      if (last == i && it != plan.slotOf.end())
        slotFree[it->second] = true;
    }
    // A buffer written but never read frees right after its kernel.
    for (auto &[b, def] : firstDef) {
      auto it = plan.slotOf.find(b);
      if (def == i && !lastUse.count(b) && it != plan.slotOf.end())
        slotFree[it->second] = true;
    }
  }
  return plan;
}

} // namespace kiln::sched
