// Scheduling: drops kernels whose results nobody reads, and plans memory so freed
// intermediate buffers are reused by later ones (slots sized for the largest user).
#pragma once

#include "loop/program.h"
#include "sched/target.h"

namespace kiln::sched {

/// Turns reductions over a few statically known taps (pooling windows, small reduced
/// dims) into pointwise kernels whose body combines the taps explicitly, so the innermost
/// output dim vectorizes instead of looping over a tiny reduction per element.
void unrollSmallReductions(loop::Program &p, sym::Context &ctx, int64_t maxTaps = 16);

/// Splits reductions with fewer than t.splitBelowOutputs outputs and a long static extent
/// into partials over equal chunks plus an in-order fold of the partials (deterministic; no
/// atomics). Off when t.splitBelowOutputs is 0 (the CPU). sched/split_reductions.cpp.
void splitFewOutputReductions(loop::Program &p, sym::Context &ctx, const Target &t);

/// The whole scheduling pipeline every program goes through (aot/, subgraphs, tests):
/// dead kernels, reduction splits, small-reduction unrolling, groups and their per-device
/// schedules, extern legalisation.
void scheduleProgram(loop::Program &p, sym::Context &ctx, const Target &t);

/// Removes kernels whose outputs are neither read nor graph outputs (kernels that set late
/// symbols stay).
void eliminateDeadKernels(loop::Program &p);

/// Groups kernels for execution: each extern alone; a reduction followed by kernels
/// that iterate the same outer dims and read the group's results only at the current
/// outer point (softmax, layer norm) share one parallel outer loop nest.
/// Then records the per-device decisions of each group (CpuSchedule, CudaSchedule) for the
/// printers of target t.
void formGroups(loop::Program &p, sym::Context &ctx, const Target &t = Target::cpu());

/// The per-device part of formGroups alone (sched/device_schedule.cpp).
void scheduleGroups(loop::Program &p, sym::Context &ctx, const Target &t);

/// Maps extern calls to the shims of target t's device (cuBLASLt/cuDNN on CUDA) and refuses,
/// naming the node, what that device cannot run (sched/legalize_externs.cpp).
void legalizeExterns(loop::Program &p, const Target &t);

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
