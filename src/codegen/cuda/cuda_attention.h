// The generated CUDA kernel of a fused attention group (loop::KernelKind::Attention).
#pragma once

#include "codegen/common/c_printer.h"

#include <sstream>

namespace kiln::codegen {

/// Prints the body of `g`'s attention kernel (its signature is already printed) and returns
/// its launch: one block per tile of query rows of one (batch, head), over a grid-stride loop.
LaunchSpec printCudaAttention(std::ostringstream &os, const loop::KernelGroup &g,
                              const SymbolNamer &modelSymbol, sym::Context &ctx);

} // namespace kiln::codegen
