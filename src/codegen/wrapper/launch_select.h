// Printing the launch of a kernel group with tuned run-time variants (KernelSource::variants):
// the wrapper evaluates the group's measure from the shape symbols and launches the variant
// whose ranges hold it. Every distinct launch (function, grid, block, shared memory) is
// printed once, under the union of its ranges.
#pragma once

#include "codegen/wrapper/device_ops.h"

#include <functional>
#include <string>

namespace kiln::codegen {

/// `base` is the launch without its device-side parts: name, index (of the group's first
/// function), arguments and their types. `cpp` spells a shape expression in the wrapper.
std::string printLaunchSelection(const LaunchCall &base, const KernelSource &ks,
                                 const std::function<std::string(sym::Expr)> &cpp,
                                 const DeviceOps &ops);

} // namespace kiln::codegen
