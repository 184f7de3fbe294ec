// The wrapper's run-time shape code: bind_shapes (input dims solved and range-checked,
// before-run values, guards, output dims) and, during the run, the values computed in
// program order (read back, checked, and the guards that become checkable).
#pragma once

#include "codegen/wrapper/device_ops.h"
#include "codegen/wrapper/shape_checks.h"
#include "codegen/wrapper/wrapper.h"
#include "ir/graph.h"
#include "loop/program.h"

#include <set>
#include <string>
#include <vector>

namespace kiln::codegen {

/// `const int64_t S<i> = S[i];` for every model symbol (the names expressions use).
std::string symbolLocals(const ModelSymbols &syms);

/// The run-time shape values one top-level group sets during the run.
std::vector<sym::Expr> valuesSetBy(const loop::KernelGroup &g);

/// What the printing needs from the wrapper generator: the model, its symbol numbering and
/// how it spells expressions and symbols.
struct ShapePrinter {
  const ir::Graph &g;
  const loop::Program &p;
  const ModelSymbols &syms;
  sym::Context &ctx;
  const DeviceOps &ops;
  SymbolCpp cpp;
  SymbolCpp symName; // a symbol's local variable

  /// Whether guard gd names a value computed in program order.
  bool mentionsInOrder(const ir::ShapeGuard &gd) const;

  /// After a value kernel ran in order: its int64 results read to the host, each checked
  /// against [lo, limit] and stored in its symbol's local.
  std::string readValues(const loop::Kernel &k) const;

  /// Guards over values computed in order, each checked once every such value it names is
  /// set (`set`); `done` marks the guards already printed.
  std::string readyGuards(const std::set<const sym::Node *> &set, std::vector<bool> &done) const;

  /// bind_impl, bind_shapes and output_dims. `beforeRunCalls` computes the before-run
  /// values; `readsInputData`: the model needs bind_shapes_v2 (ABI 2) for them.
  std::string bindShapes(const std::string &beforeRunCalls, bool readsInputData) const;
};

} // namespace kiln::codegen
