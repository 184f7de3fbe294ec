// Wrapper code for control flow (loop/control_flow.h): each sub-program becomes a
// function `run_sub_<n>` whose statements the wrapper generator prints like run_impl's,
// and each Call kernel real C++ control flow around calls of them.
#pragma once

#include "codegen/wrapper/device_ops.h"
#include "codegen/wrapper/shape_checks.h"
#include "loop/control_flow.h"
#include "sched/schedule.h"

#include <functional>
#include <map>
#include <string>

namespace kiln::codegen {

/// The model's sub-programs as the wrapper sees them. Their symbols (iteration numbers,
/// shape values a body computes) follow the model's in the symbols array S; a call passes
/// a full copy with its own values set.
class SubPrograms {
public:
  SubPrograms(const loop::Program &top, sym::Context &ctx);
  const std::vector<const loop::SubProgram *> &all() const { return subs_; }
  const std::vector<sym::Expr> &locals() const { return locals_; }
  size_t numSites() const { return sites_.size(); }
  int site(const loop::Kernel *call) const { return sites_.at(call); }
  std::string function(const loop::SubProgram &sub) const;

  /// Numbers the sub-programs' kernels from `firstId` and prints them into `sources`.
  void printKernels(int firstId, std::vector<std::string> &sources,
                    const std::function<bool(sym::Expr)> &isSymbol, const SymbolNamer &name,
                    const KernelBackend &backend);
  const std::vector<KernelSignature> &signatures(const loop::SubProgram &sub) const {
    return sigs_.at(&sub);
  }
  std::string declarations(const DeviceOps &ops) const;
  /// The prelude, then every function; `body` prints one function's statements.
  std::string functions(const std::function<std::string(const loop::SubProgram &)> &body) const;

  /// A function's first statements: its own shape values known before it runs (value
  /// kernels reading only its inputs) computed into SS (a copy of S), range-checked; empty
  /// when it has none.
  std::string beforeRunCalls(const loop::SubProgram &sub, size_t numSymbols,
                             const std::function<int(sym::Expr)> &index,
                             const SymbolCpp &cpp) const;
  /// Its guards, then its scratch: the call site's block, grown when this call needs more
  /// (never per iteration), and the slot pointers into it.
  std::string prologue(const loop::SubProgram &sub, const DeviceOps &ops,
                       const SymbolCpp &cpp) const;
  const sched::MemoryPlan &plan(const loop::SubProgram &sub) const {
    return layouts_.at(&sub).plan;
  }

private:
  struct Layout {
    sched::MemoryPlan plan;
    std::vector<sym::Expr> offsets; // per slot, 64-byte aligned
    sym::Expr total;
  };
  sym::Context &ctx_;
  std::vector<const loop::SubProgram *> subs_;
  std::vector<sym::Expr> locals_;
  std::map<const loop::Kernel *, int> sites_;
  std::map<const loop::SubProgram *, std::vector<KernelSignature>> sigs_;
  std::map<const loop::Kernel *, KernelSignature> beforeRunSigs_;
  std::map<const loop::SubProgram *, Layout> layouts_;
};

/// What printing a Call needs from the wrapper generator.
struct CallPrinter {
  size_t numSymbols;                         // length of a full symbols array
  std::function<int(sym::Expr)> symbolIndex; // a symbol's position in it
  const SubPrograms &subs;
  std::string symbols; // C array with the caller's full symbols ("SX", "SS" or "S")
  /// Symbols whose current value is the local S<i> rather than the array (run_impl's late
  /// symbols, set during the run).
  std::vector<int> live;
};

/// The statement block that runs Call kernel k.
std::string printCall(const loop::Kernel &k, const CallPrinter &p);

} // namespace kiln::codegen
