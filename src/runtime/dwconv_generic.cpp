// Depthwise 3x3 NHWC convolution: the baseline-ISA row kernel (one channel at a time), the
// run-time choice among the ISA kernels, the weight packing and the threaded driver.
#include "dwconv.h"
#include "dwconv_kernel.h"
#include "isa_cap.h"
#include "simd_scalar.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace kiln::rt {
using simd::Scalar;
namespace {

const DwRowKernel &bestDwKernel() {
#if defined(__x86_64__)
  const int bits = usableIsaBits();
  if (bits >= 512) return dwAvx512Kernel();
  if (bits >= 256) return dwAvx2Kernel();
#endif
  return dwGenericKernel();
}

std::atomic<const DwRowKernel *> forcedDw{nullptr};

} // namespace

const DwRowKernel &dwGenericKernel() {
  static const DwRowKernel k{"generic", Scalar::W, &dw::rows<Scalar>};
  return k;
}

bool forceDwIsa(DwIsa isa) {
  switch (isa) {
  case DwIsa::Auto:
    forcedDw = nullptr;
    return true;
  case DwIsa::Avx512:
#if defined(__x86_64__)
    if (cpuIsaBits() < 512) return false;
    forcedDw = &dwAvx512Kernel();
    return true;
#else
    return false;
#endif
  case DwIsa::Avx2:
#if defined(__x86_64__)
    if (cpuIsaBits() < 256) return false;
    forcedDw = &dwAvx2Kernel();
    return true;
#else
    return false;
#endif
  case DwIsa::Generic:
    forcedDw = &dwGenericKernel();
    return true;
  }
  return false;
}

void packDwWeights(const float *w, int64_t c, float *packed) {
  for (int64_t ch = 0; ch < c; ++ch)
    for (int k = 0; k < 9; ++k)
      packed[k * c + ch] = w[ch * 9 + k];
}

const DwRowKernel &activeDwKernel() {
  static const DwRowKernel &best = bestDwKernel();
  const DwRowKernel *f = forcedDw.load(std::memory_order_relaxed);
  return f ? *f : best;
}

void dwConv3x3Nhwc(const DwConvParams &p, const float *x, const float *packed, const float *bias,
                   float *y) {
  const DwRowKernel &k = activeDwKernel();
  // Inside a parallel region (the conv chain's lanes) the loop below gets one thread.
  const int threads = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  // Each thread takes a contiguous share of the channel vectors (all rows: the input rows
  // of a channel block are reused from L1); maps with fewer vectors than threads are also
  // split into row groups.
  const int64_t vecs = (p.c + k.lanes - 1) / k.lanes;
  const int64_t chunks = std::min<int64_t>(vecs, threads);
  const int64_t rowGroups = std::min<int64_t>(p.oh, (threads + chunks - 1) / chunks);
  const int64_t items = p.n * rowGroups * chunks;
  auto run = [&](int64_t i) {
    const int64_t ch = i % chunks, g = (i / chunks) % rowGroups, n = i / (chunks * rowGroups);
    const int64_t c0 = vecs * ch / chunks * k.lanes;
    const int64_t c1 = std::min(p.c, vecs * (ch + 1) / chunks * k.lanes);
    const int64_t oy0 = p.oh * g / rowGroups, oy1 = p.oh * (g + 1) / rowGroups;
    if (c0 < c1 && oy0 < oy1) k.rows(p, x, packed, bias, y, n, oy0, oy1, c0, c1);
  };
  if (threads == 1 || items == 1) {
    for (int64_t i = 0; i < items; ++i)
      run(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < items; ++i)
    run(i);
}

} // namespace kiln::rt
