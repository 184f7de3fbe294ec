// The widest vectors kiln's own runtime kernels (attention, depthwise conv, GEMV, Winograd)
// may use. ONEDNN_MAX_CPU_ISA caps oneDNN; the same variable caps these kernels, so a capped
// run behaves as a CPU without the wider ISA would: A/B runs against oneDNN compare like
// with like, and an AVX-512 machine can time kiln's AVX2 paths (docs/perf.md).
#pragma once

#include "cpu_features.h"

#include <cstdlib>
#include <strings.h>

namespace kiln::rt {

/// 512 when unset or when the cap allows AVX-512 (AVX512*, AVX10*, AMX*, ALL), 256 for
/// AVX2*, 0 below AVX2 (SSE41, AVX): only the generic kernels then. Read on every call;
/// callers cache what they pick.
inline int isaCapBits() {
  const char *v = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (!v || !*v) return 512;
  if (strncasecmp(v, "AVX512", 6) == 0 || strncasecmp(v, "AVX10", 5) == 0 ||
      strncasecmp(v, "AMX", 3) == 0 || strcasecmp(v, "ALL") == 0)
    return 512;
  if (strncasecmp(v, "AVX2", 4) == 0) return 256;
  return 0;
}

/// The widest vectors of kiln's kernels this CPU runs, cap aside: 512 (AVX-512F with AVX2 and
/// FMA), 256 (AVX2 and FMA) or 0. Worked out once: shims ask per call, and parsing the feature
/// names each time took ~1% of MobileNetV2's run at 1 thread (session 39).
inline int cpuIsaBits() {
  static const int bits = [] {
#if defined(__x86_64__)
    if (cpu::missingFeatures("avx512f,avx2,fma").empty()) return 512;
    if (cpu::missingFeatures("avx2,fma").empty()) return 256;
#endif
    return 0;
  }();
  return bits;
}

/// The widest vectors this CPU runs and the cap allows (512, 256 or 0).
inline int usableIsaBits() {
  const int cap = isaCapBits(), cpu = cpuIsaBits();
  return cap < cpu ? cap : cpu;
}

} // namespace kiln::rt
