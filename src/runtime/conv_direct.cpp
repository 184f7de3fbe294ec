// The conv shim's direct route for few input channels (conv_direct.h): shape rule, packed
// weights per constant set, rows split over the run's threads.
#include "conv_direct.h"

#include "error.h"
#include "isa_cap.h"
#include "shim_conv.h"

#include <kiln/model.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace kiln::rt {
namespace {

std::atomic<int> forcedDirect{-1};

bool directEnvAllows() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_CONV_DIRECT");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

struct PackedDirectWeights : CacheEntry {
  std::vector<float> packed;
};

DirectConvParams directParamsOf(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                                const kiln_conv_params_v1 &p) {
  DirectConvParams d{};
  d.n = xDims[0];
  d.c = xDims[1];
  d.h = xDims[2];
  d.w = xDims[3];
  d.o = wDims[0];
  d.oh = yDims[2];
  d.ow = yDims[3];
  d.kh = wDims[2];
  d.kw = wDims[3];
  d.strideH = p.strides[0];
  d.strideW = p.strides[1];
  d.padTop = p.pads_begin[0];
  d.padLeft = p.pads_begin[1];
  const ClampBounds bounds = clampBounds(p);
  d.lo = bounds.lo;
  d.hi = bounds.hi;
  return d;
}

const float *directPackedWeights(Runner &r, int64_t site, const float *w, const DirectConvParams &d,
                                 int64_t block, std::vector<float> &fromData) {
  const size_t floats = static_cast<size_t>(d.o * d.c * d.kh * d.kw);
  if (!r.isConstant(w)) { // weights that are data are packed on every call
    fromData.resize(floats);
    packDirectConvWeights(w, d, block, fromData.data());
    return fromData.data();
  }
  CacheKey key;
  key.push(site);
  key.push(static_cast<int64_t>(reinterpret_cast<uintptr_t>(w)));
  for (int64_t v : {d.o, d.c, d.kh, d.kw, block})
    key.push(v);
  auto *e = static_cast<PackedDirectWeights *>(r.dnnl.findDerived(key));
  if (!e) {
    auto fresh = std::make_unique<PackedDirectWeights>();
    fresh->packed.resize(floats);
    packDirectConvWeights(w, d, block, fresh->packed.data());
    e = static_cast<PackedDirectWeights *>(
        r.dnnl.insertDerived(key, std::move(fresh), w, sizeof(float) * floats));
  }
  return e->packed.data();
}

} // namespace

const DirectConvKernel *activeDirectConvKernel() {
#if defined(__x86_64__)
  if (usableIsaBits() >= 256) return &directConvAvx2Kernel();
#endif
  return nullptr;
}

int64_t directConvScratchFloats(const DirectConvParams &p, int64_t pixels) {
  return p.kh * ((pixels - 1) * p.strideW + p.kw) * p.c;
}

void packDirectConvWeights(const float *w, const DirectConvParams &p, int64_t block,
                           float *packed) {
  const int64_t window = p.kh * p.kw * p.c;
  for (int64_t o = 0; o < p.o; ++o)
    for (int64_t c = 0; c < p.c; ++c)
      for (int64_t ky = 0; ky < p.kh; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx)
          packed[(o / block) * window * block + ((ky * p.kw + kx) * p.c + c) * block + o % block] =
              w[((o * p.c + c) * p.kh + ky) * p.kw + kx];
}

void forceKilnDirectConv(int on) {
  forcedDirect.store(on);
}

bool directConvWanted(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                      const float *residual, const kiln_conv_params_v1 &p) {
  const int mode = forcedDirect.load(std::memory_order_relaxed);
  if (mode == 0 || (mode < 0 && (!directEnvAllows() || usableIsaBits() != 256))) return false;
  const DirectConvKernel *kernel = activeDirectConvKernel();
  if (!kernel || residual || p.spatial_rank != 2 || p.groups != 1) return false;
  const int64_t c = xDims[1], o = wDims[0];
  if (c < 1 || c > 4 || o % kernel->block != 0 || wDims[1] != c || xDims[0] < 1) return false;
  for (int i = 0; i < 2; ++i) {
    const int64_t k = wDims[2 + i];
    if (k < 1 || k > 11 || p.dilations[i] != 1 || p.strides[i] < 1 || p.strides[i] > 4)
      return false;
    // The output size must be what the pads give (the shim's caller guarantees it; refuse
    // rather than read outside x if it ever does not).
    if (yDims[2 + i] != (xDims[2 + i] + p.pads_begin[i] + p.pads_end[i] - k) / p.strides[i] + 1)
      return false;
  }
  return yDims[3] >= kernel->pixels && yDims[2] >= 1;
}

int directConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                      const int64_t *wDims, const float *bias, float *y, const int64_t *yDims,
                      const kiln_conv_params_v1 &p) {
  try {
    const DirectConvParams d = directParamsOf(xDims, wDims, yDims, p);
    const DirectConvKernel *kernel = activeDirectConvKernel();
    if (!kernel || directConvScratchFloats(d, kernel->pixels) > kDirectConvScratchFloats)
      return fail(KILN_ERR_INTERNAL, "conv site %lld: no direct conv kernel for this shape",
                  static_cast<long long>(site));
    std::vector<float> fromData, zeros;
    const float *packed = directPackedWeights(r, site, w, d, kernel->block, fromData);
    if (!bias) {
      zeros.assign(static_cast<size_t>(d.o), 0.f);
      bias = zeros.data();
    }
    // Inside a parallel region (a conv chain's lanes) the loop below gets one thread.
    const int threads = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
    const int64_t rows = d.n * d.oh;
    auto run = [&](int64_t first, int64_t last) {
      float scratch[kDirectConvScratchFloats];
      // Row ranges of one image at a time.
      for (int64_t row = first; row < last;) {
        const int64_t n = row / d.oh, oy0 = row % d.oh;
        const int64_t oy1 = std::min(d.oh, oy0 + (last - row));
        kernel->rows(d, x, packed, bias, y, n, oy0, oy1, scratch);
        row += oy1 - oy0;
      }
    };
    if (threads == 1 || rows == 1) {
      run(0, rows);
      return KILN_OK;
    }
    const int team = static_cast<int>(std::min<int64_t>(threads, rows));
#pragma omp parallel num_threads(team)
    {
      const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
      run(rows * t / count, rows * (t + 1) / count);
    }
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt
