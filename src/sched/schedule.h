// Scheduling: drops kernels whose results nobody reads, and plans memory so freed
// intermediate buffers are reused by later ones (slots sized for the largest user).
#pragma once

#include "loop/program.h"

namespace kiln::sched {

/// Turns reductions over a few statically known taps (pooling windows, small reduced
/// dims) into pointwise kernels whose body combines the taps explicitly, so the innermost
/// output dim vectorizes instead of looping over a tiny reduction per element.
void unrollSmallReductions(loop::Program &p, sym::Context &ctx, int64_t maxTaps = 16);

/// Removes kernels whose outputs are neither read nor graph outputs.
void eliminateDeadKernels(loop::Program &p);

/// Groups kernels for execution: each extern alone; a reduction followed by kernels
/// that iterate the same outer dims and read the group's results only at the current
/// outer point (softmax, layer norm) share one parallel outer loop nest.
void formGroups(loop::Program &p, sym::Context &ctx);

struct Slot {
  sym::Expr bytes;
};

struct MemoryPlan {
  std::vector<Slot> slots;
  std::map<const loop::Buffer *, int> slotOf; // intermediate buffer → slot
};

/// Greedy liveness-based reuse over the group order (a group's buffers live across it).
MemoryPlan planMemory(const loop::Program &p, sym::Context &ctx);

} // namespace kiln::sched
