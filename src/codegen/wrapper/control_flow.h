// Wrapper code for Call kernels (loop/control_flow.h): real C++ control flow around calls
// of the sub-program functions `run_sub_<n>`, which the wrapper generator prints like
// run_impl (own memory plan; scratch in one block the caller provides).
#pragma once

#include "codegen/wrapper/device_ops.h"
#include "loop/control_flow.h"
#include "sched/schedule.h"

#include <functional>
#include <string>

namespace kiln::codegen {

/// A sub-program's scratch: its memory plan's slots packed into one block at 64-byte
/// aligned offsets.
struct ScratchLayout {
  sched::MemoryPlan plan;
  std::vector<sym::Expr> offsets; // per slot
  sym::Expr total;
};
ScratchLayout scratchLayout(const loop::Program &p, sym::Context &ctx);

/// What printing a Call needs from the wrapper generator.
struct CallPrinter {
  const DeviceOps &ops;
  size_t numSymbols;                         // length of a full symbols array
  std::function<int(sym::Expr)> symbolIndex; // a symbol's position in it
  std::function<std::string(const loop::SubProgram &)> function;
  std::function<sym::Expr(const loop::SubProgram &)> scratchBytes;
  std::string symbols; // C array with the caller's full symbols ("SX" or "S")
};

/// Per-call-site scratch blocks, kept across iterations: declared once in run_impl and
/// passed down, so a loop body's scratch is allocated once, not per iteration.
std::string controlFlowPrelude();

/// The statement block that runs Call kernel k; `site` is its scratch block.
std::string printCall(const loop::Kernel &k, int site, const CallPrinter &p);

} // namespace kiln::codegen
