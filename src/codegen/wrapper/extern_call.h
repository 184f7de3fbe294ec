// Printing one typed extern call (loop::ExternCall, after legalisation) as the wrapper's C++:
// the params struct, the argument arrays and the argument list of the shim call.
#pragma once

#include "loop/program.h"

#include <functional>
#include <string>

namespace kiln::codegen {

/// How the wrapper spells shape expressions and the variables holding symbols.
struct ExternCallNames {
  std::function<std::string(sym::Expr)> expr;
  std::function<std::string(sym::Expr)> symbol;
};

struct ExternCallText {
  std::string setup; // statements before the call (params struct, dims and string arrays)
  std::string args;  // the arguments after the runner, comma-separated
};

ExternCallText printExternCall(const loop::ExternCall &e, const ExternCallNames &names);

} // namespace kiln::codegen
