// One element of a lowered tensor at a run-time index along one axis (shared by the ops
// that gather: losses, Resize).
#pragma once

#include "lower/lowerer.h"

namespace kiln::lower {

/// data[prefix..., v, suffix...] where v is a run-time Int64 index at `axis`, clamped into
/// [0, n - 1] (a compile-time index becomes a plain load).
loop::VRef gatherAt(Lowerer &low, const LTensor &data, Index idx, int axis, loop::VRef v);

} // namespace kiln::lower
