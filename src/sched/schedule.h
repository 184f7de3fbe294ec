// Scheduling: drops kernels whose results nobody reads, and plans memory so freed
// intermediate buffers are reused by later ones (slots sized for the largest user).
#pragma once

#include "loop/program.h"

namespace kiln::sched {

/// Removes kernels whose outputs are neither read nor graph outputs.
void eliminateDeadKernels(loop::Program &p);

struct Slot {
  sym::Expr bytes;
};

struct MemoryPlan {
  std::vector<Slot> slots;
  std::map<const loop::Buffer *, int> slotOf; // intermediate buffer → slot
};

/// Greedy liveness-based reuse over the kernel order.
MemoryPlan planMemory(const loop::Program &p, sym::Context &ctx);

} // namespace kiln::sched
