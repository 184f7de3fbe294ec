// GEMV (gemv.h): the baseline-ISA kernel, the run-time choice among the ISA kernels, the
// weight packing and the threaded driver.
#include "gemv.h"
#include "gemv_kernel.h"
#include "isa_cap.h"
#include "simd_scalar.h"

#include <omp.h>

#include <algorithm>
#include <atomic>

namespace kiln::rt {
namespace {

const GemvKernel &bestGemvKernel() {
#if defined(__x86_64__)
  const int bits = usableIsaBits();
  if (bits >= 512) return gemvAvx512Kernel();
  if (bits >= 256) return gemvAvx2Kernel();
#endif
  return gemvGenericKernel();
}

std::atomic<const GemvKernel *> forcedGemv{nullptr};

} // namespace

const GemvKernel &gemvGenericKernel() {
  static const GemvKernel k{"generic", &gemv_kernel::panels<simd::Scalar, 1, 1, 1, 1>};
  return k;
}

const GemvKernel &activeGemvKernel() {
  static const GemvKernel &best = bestGemvKernel();
  const GemvKernel *f = forcedGemv.load(std::memory_order_relaxed);
  return f ? *f : best;
}

void forceGemvKernel(const GemvKernel *k) {
  forcedGemv = k;
}

size_t gemvPackedFloats(int64_t n, int64_t k) {
  return static_cast<size_t>((n + kGemvPanel - 1) / kGemvPanel) * kGemvPanel * k;
}

void packGemvWeights(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB,
                     float *packed) {
  const int64_t panels = (n + kGemvPanel - 1) / kGemvPanel;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t q = 0; q < k; ++q)
      for (int64_t j = 0; j < kGemvPanel; ++j) {
        const int64_t col = p * kGemvPanel + j;
        float v = 0.f;
        if (col < n) v = transB ? b[col * ldb + q] : b[q * ldb + col];
        packed[(p * k + q) * kGemvPanel + j] = v;
      }
}

void gemv(const GemvParams &g, const float *a, const float *packed, float *c) {
  gemvWith(activeGemvKernel(), g, a, packed, c);
}

void gemvWith(const GemvKernel &kernel, const GemvParams &g, const float *a, const float *packed,
              float *c) {
  const int64_t panels = (g.n + kGemvPanel - 1) / kGemvPanel;
  // Shares of whole 4-panel steps; a thread gets at least 8 panels (128 columns), below that
  // the fork costs more than the stream it saves.
  const int64_t threads =
      omp_in_parallel() ? 1 : std::min<int64_t>(std::max(1, omp_get_max_threads()), panels / 8);
  if (threads <= 1) {
    kernel.panels(g, a, packed, c, 0, panels);
    return;
  }
  const int64_t steps = (panels + 3) / 4;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t p0 = std::min(panels, steps * t / threads * 4);
    const int64_t p1 = std::min(panels, steps * (t + 1) / threads * 4);
    if (p0 < p1) kernel.panels(g, a, packed, c, p0, p1);
  }
}

} // namespace kiln::rt
