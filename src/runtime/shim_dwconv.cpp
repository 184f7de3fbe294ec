// The conv shim's depthwise route: shape rule, packed-weight cache, call into dwconv.h.
#include "shim_dwconv.h"

#include "dwconv.h"
#include "error.h"
#include "shim_conv.h"

#include <kiln/model.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace kiln::rt {
namespace {

std::atomic<int> forcedDepthwise{-1};

// -1: KILN_CONV_DEPTHWISE=0 (oneDNN everywhere); 1: KILN_CONV_DEPTHWISE=all (every shape
// the kernel can run, for tests); 0: the measured rule.
int depthwiseMode() {
  static const int fromEnv = [] {
    const char *v = std::getenv("KILN_CONV_DEPTHWISE");
    if (v && std::strcmp(v, "0") == 0) return -1;
    return v && std::strcmp(v, "all") == 0 ? 1 : 0;
  }();
  int f = forcedDepthwise.load(std::memory_order_relaxed);
  return f < 0 ? fromEnv : f == 1 ? 1 : -1;
}

// Where kiln's kernel beat oneDNN 2.6 (bench/conv, MobileNetV2's shapes; docs/perf.md):
// with AVX2 + FMA only, every shape (0.6-0.7x oneDNN's time: oneDNN's jit_dw:avx2 wants
// nChw8c, so it reorders from and to NHWC around each call). With AVX-512 oneDNN's
// brdgmm_dw works on NHWC directly: on the loaded Zen 5 box the kernel was 0.86-0.93x on maps
// of 28x28 and more, but on the quiet Sapphire Rapids host the whole model ran 1.06x (1
// thread) and 1.19x (2 threads) slower with it, so AVX-512 keeps oneDNN. The scalar kernel
// never wins.
bool kernelWins(const int64_t *) {
  return activeDwKernel().lanes == 8;
}

// Weights packed [3, 3, C] for one site and constant weight pointer; kept with the other
// derived weights (DnnlCache::insertDerived), which a constant update drops.
struct DwEntry : CacheEntry {
  std::vector<float> packed;
};

} // namespace

void forceKilnDepthwise(int on) {
  forcedDepthwise.store(on < 0 ? -1 : on ? 1 : 0);
}

bool dwKernelComputes(const int64_t *wDims, const kiln_conv_params_v1 &p, int64_t c) {
  if (p.spatial_rank != 2 || p.groups != c || wDims[0] != c || wDims[1] != 1 || wDims[2] != 3 ||
      wDims[3] != 3)
    return false;
  if (p.strides[0] != p.strides[1] || p.strides[0] < 1 || p.strides[0] > 2) return false;
  for (int i = 0; i < 2; ++i)
    if (p.dilations[i] != 1 || p.pads_begin[i] > 1 || p.pads_end[i] > 1) return false;
  return true;
}

bool useKilnDepthwise(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                      const float *residual, const kiln_conv_params_v1 &p) {
  const int mode = depthwiseMode();
  if (residual || mode < 0 || yDims[1] != xDims[1] || !dwKernelComputes(wDims, p, xDims[1]))
    return false;
  // The output size must be what the pads give (the shim's caller guarantees it; refuse
  // rather than read outside x if it ever does not).
  for (int i = 0; i < 2; ++i)
    if (yDims[2 + i] != (xDims[2 + i] + p.pads_begin[i] + p.pads_end[i] - 3) / p.strides[i] + 1)
      return false;
  return mode == 1 || kernelWins(yDims);
}

const float *dwPackedWeights(Runner &r, int64_t site, const float *w, int64_t c,
                             std::vector<float> &fromData) {
  if (!r.isConstant(w)) { // weights that are data are packed on every call
    fromData.resize(9 * c);
    packDwWeights(w, c, fromData.data());
    return fromData.data();
  }
  CacheKey key;
  key.push(site);
  key.push(static_cast<int64_t>(reinterpret_cast<uintptr_t>(w)));
  key.push(c);
  auto *e = static_cast<DwEntry *>(r.dnnl.findDerived(key));
  if (!e) {
    auto fresh = std::make_unique<DwEntry>();
    fresh->packed.resize(9 * c);
    packDwWeights(w, c, fresh->packed.data());
    e = static_cast<DwEntry *>(
        r.dnnl.insertDerived(key, std::move(fresh), w, sizeof(float) * 9 * c));
  }
  return e->packed.data();
}

int dwConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                  const float *bias, float *y, const int64_t *yDims, const kiln_conv_params_v1 &p) {
  try {
    const int64_t c = xDims[1];
    std::vector<float> fromData;
    const float *packed = dwPackedWeights(r, site, w, c, fromData);
    DwConvParams d{};
    d.n = xDims[0];
    d.c = c;
    d.h = xDims[2];
    d.w = xDims[3];
    d.oh = yDims[2];
    d.ow = yDims[3];
    d.stride = p.strides[0];
    d.padTop = p.pads_begin[0];
    d.padLeft = p.pads_begin[1];
    const ClampBounds bounds = clampBounds(p);
    d.clipMin = bounds.lo;
    d.clipMax = bounds.hi;
    dwConv3x3Nhwc(d, x, packed, bias, y);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt
