// Recognises GELU applied to one value: the Gelu op (opset 20) and the formulas exporters
// write out (torch's erf form, GPT-2's tanh form). Used by passes/fuse_epilogues.cpp.
#pragma once

#include "ir/graph.h"

#include <vector>

namespace kiln::passes {

struct GeluMatch {
  int postOp = 0;                // KILN_POST_GELU_ERF or KILN_POST_GELU_TANH; 0: no GELU
  ir::Node *last = nullptr;      // the node whose output is GELU(x)
  std::vector<ir::Node *> nodes; // every node of the pattern, `last` included
};

/// GELU(x) when x's users are exactly one GELU computation and nothing else (no other user,
/// not a graph output; every intermediate used only inside it). Recognised forms, operands
/// of Mul/Add in either order and Mul chains in any association:
///   Gelu(x)                                        (approximate "none" or "tanh")
///   x * (1 + Erf(x / c)) * 0.5                     (c = sqrt 2; or Erf(x * 1/sqrt 2))
///   0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))   (x^3 as Pow(x, 3) or x*x*x)
/// Constants must equal these to float precision (1e-6 relative): a model whose constants
/// differ computes something else and is left alone.
GeluMatch matchGelu(ir::Value *x);

} // namespace kiln::passes
