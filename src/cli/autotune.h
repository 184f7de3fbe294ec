// `kiln compile --autotune`: measures candidate CUDA launch configurations of every kernel
// on this machine's GPU and writes the tuning file later compiles take (--tuning-file).
#pragma once

#include "aot/compile.h"

#include <string>

namespace kiln::cli {

/// Compiles one variant of the model per candidate index, runs each on the GPU at every size
/// bucket of its dynamic dims with per-kernel timing, keeps each kernel's fastest candidate
/// and writes them to `tuningPath`. Returns the table (opts' output is not written).
sched::TuningTable autotune(const aot::CompileOptions &opts, const std::string &tuningPath);

} // namespace kiln::cli
