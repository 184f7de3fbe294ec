// libgomp (the OpenMP runtime of kiln's kernels and of oneDNN) spins 300,000 iterations of
// PAUSE at every barrier before it sleeps. On a machine other processes keep busy, the thread
// a spinner waits for may not get a CPU during that spin, and every parallel region of a run
// can cost the whole spin (docs/perf.md: BERT-base at 2 threads 1.3-2.2 s instead of ~0.16 s
// on Zen 5, whose PAUSE takes ~52 ns). Too short a spin costs the other way: each region then
// wakes sleeping workers (BERT-base at 2 threads on a Xeon whose PAUSE takes 9.7 ns: 1000
// iterations, ~10 us, left its LayerNorm kernels 3x slower and the run 5% slower than 3000+;
// docs/perf.md, session 20). So the spin is set by time, ~50 us, from the measured PAUSE.
// libgomp reads the setting once, when it is loaded, so this runs before the first model.
#include "cli/openmp_spin.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kiln::cli {
namespace {

constexpr double kSpinTargetUs = 50;

/// Nanoseconds per PAUSE, the fastest of a few short probes (~0.1-1 ms in all); 0 off x86.
double measurePauseNs() {
#if defined(__x86_64__) || defined(__i386__)
  constexpr int kPauses = 2000, kProbes = 5;
  double best = 0;
  for (int p = 0; p < kProbes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kPauses; ++i)
      _mm_pause();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
        kPauses;
    if (p == 0 || ns < best) best = ns;
  }
  return best;
#else
  return 0;
#endif
}

} // namespace

long spinIterations(double pauseNs, double targetUs) {
  if (!(pauseNs > 0)) return 1000;
  const double n = std::round(targetUs * 1000.0 / pauseNs);
  return static_cast<long>(std::clamp(n, 100.0, 300000.0));
}

const OpenMpSpin &boundOpenMpSpin() {
  static const OpenMpSpin spin = [] {
    OpenMpSpin s;
    for (const char *name : {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"})
      if (const char *v = std::getenv(name)) {
        s.setting = std::string(name) + "=" + v;
        s.fromEnvironment = true;
        return s;
      }
    s.pauseNs = measurePauseNs();
    s.targetUs = kSpinTargetUs;
    const std::string count = std::to_string(spinIterations(s.pauseNs, s.targetUs));
    setenv("GOMP_SPINCOUNT", count.c_str(), 0);
    s.setting = "GOMP_SPINCOUNT=" + count;
    return s;
  }();
  return spin;
}

} // namespace kiln::cli
