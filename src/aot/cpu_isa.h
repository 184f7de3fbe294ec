// `kiln compile --cpu`: which CPU the model's host code is built for, and the ISA
// extensions that implies (recorded in model.so; libkiln_rt checks them before a run).
#pragma once

#include <string>

namespace kiln::aot {

struct CpuIsa {
  std::string march;    // the -march value: "native", "x86-64-v3", "skylake-avx512", ...
  std::string name;     // for people: "x86-64-v3", "native (znver3)"
  std::string features; // comma-separated names from runtime/cpu_features.h
  /// The g++ option that lets generated kernels use AVX2 gathers where GCC's tuning for this
  /// CPU turns them off (Zen 1-2, -mtune=generic), or empty where g++ knows no such option.
  std::string gatherFlag;
};

/// Asks g++ which feature macros -march=`cpu` enables (and which spelling of the gather tuning
/// option it accepts), or reads its earlier answer from
/// `<cacheDir>/probes` (tool_probes.h; empty: always ask). Throws UserError naming --cpu when
/// g++ does not know the name.
CpuIsa resolveCpuIsa(const std::string &cpu, const std::string &cacheDir);

} // namespace kiln::aot
