// The run-time checks of shapes, printed once for the whole wrapper: shape guards (a
// specialised dim, two dims that must agree) and run-time shape values
// (loop::RuntimeShapeValue), computed by value kernels before the run or in program order.
#pragma once

#include "codegen/common/c_printer.h"
#include "ir/graph.h"
#include "loop/program.h"

#include <functional>
#include <string>

namespace kiln::codegen {

using SymbolCpp = std::function<std::string(sym::Expr)>;

/// The statement checking one shape guard; `err` is the message buffer and its size
/// ("err, err_size").
std::string guardCheck(const ir::ShapeGuard &gd, const SymbolCpp &cpp, const std::string &err);

/// The check of one run-time shape value held in the C expression `value` against
/// [lo, limit], with the message its phase and source call for, then its store into
/// `target`. Indented for a block inside a function.
std::string valueCheck(const loop::RuntimeShapeValue &v, const std::string &value,
                       const std::string &target, const SymbolCpp &cpp, const std::string &err);

/// How a before-run value kernel's call reaches the data: an input's host pointer, a
/// symbol's value and the place each value is stored.
struct BeforeRunArgs {
  std::function<std::string(const loop::Buffer &)> input; // e.g. "(const int64_t *)data[0]"
  std::function<std::string(sym::Expr)> symbol;           // e.g. "S[3]"
  std::string err;                                        // "err, err_size"
};

/// One block calling a value kernel that runs before the run (host code) and storing each
/// of its values after its check.
std::string beforeRunCall(const loop::Program &p, const loop::Kernel &k, const KernelSignature &sig,
                          const BeforeRunArgs &a, const SymbolCpp &cpp);

} // namespace kiln::codegen
