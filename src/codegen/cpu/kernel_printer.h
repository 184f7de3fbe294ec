// Prints loop-IR kernels as C++ functions (OpenMP over outer loops, an innermost loop
// GCC vectorizes). The wrapper calls each as `kiln_kernel_<id>(buffers..., symbols...)`.
#pragma once

#include "loop/program.h"

#include <functional>
#include <string>
#include <vector>

namespace kiln::codegen {

/// Maps a model symbol to the C identifier holding its value ("S0"...).
using SymbolNamer = std::function<std::string(sym::Expr)>;

struct KernelSignature {
  std::vector<loop::Buffer *> buffers; // in parameter order
  std::vector<bool> written;
  std::vector<sym::Expr> symbols; // model symbols used, in parameter order
};

/// C parameter types of a kernel with this signature: `[const] T *` per buffer, then one
/// int64_t per symbol (for declarations in the wrapper).
std::vector<std::string> parameterTypes(const KernelSignature &sig);

/// Buffers (read/written) and model symbols of a kernel group, in parameter order.
KernelSignature signatureOf(const loop::KernelGroup &g,
                            const std::function<bool(sym::Expr)> &isModelSymbol);

/// C++ source of one kernel group as one function `kiln_kernel_<first id>`.
std::string printCpuGroup(const loop::KernelGroup &g, const KernelSignature &sig,
                          const SymbolNamer &modelSymbol, sym::Context &ctx);

/// Compute type used for arithmetic on a dtype (halves compute in float).
const char *computeType(DType t);

} // namespace kiln::codegen
