// Channels-last KxK convs on few pixels as one GEMM over their patches (im2col): A holds, per
// output pixel, the kh x kw x C input values its window reads (zeros where it hangs over the
// pads), B the weights permuted to [kh][kw][C] x O and packed once into the GEMM's 16-column
// panels, kept with the derived weights like the Winograd transform. Bias, residual and the
// activation run in the GEMM's epilogue.
//
// Why: ResNet-50's layer4 3x3 convs (7 x 7 pixels, 512 -> 512) stream 9.4 MB of weights for
// 49 pixels each; oneDNN 2.6's direct conv ran them at 53-59% of the FMA peak on the Intel
// Xeon of session 23, kiln's AVX-512 GEMM runs 49 x 512 x 4608 at ~70% with B from memory.
// Copying the patches costs 0.9 MB per conv. At 14 x 14 (196 pixels, 256 channels) the GEMM
// was level with oneDNN, so the route stops at 64 pixels (docs/perf.md, session 23) -- except
// for non-overlapping patches (stride = kernel: ViT's 16 x 16 patch embedding), which the
// gather copies row by row and oneDNN ran at 55% of the FMA peak (1.92 ms against 1.49-1.53
// through the GEMM for ViT-B/16's 196 x 768 x 768).
//
// With AVX2 only (session 37; bench/conv's kiln_conv_route_bench on Zen 3, and on an Intel
// Xeon capped at AVX2): oneDNN's jit:avx2 direct conv ran ResNet's 7 x 7 x 512 3x3 convs at
// ~75-80 GFLOP/s, the patch GEMM 0.87-1.01x its time at 1 thread and 0.73-0.96x at 2. Strided
// 3x3 convs, which Winograd does not take, gained too at 196 pixels (0.93-1.00x, 0.89-0.93x)
// and at 784 with a window of 1152 floats (ResNet-50's layer2.0.conv2: 0.96-1.01x, 0.92-0.98x),
// but not at 784 with 576 (ResNet-18's layer2.0.conv1, 64 channels: 0.99-1.09x at 1 thread).
// So on AVX2 strided convs from 128 outputs go up to kMaxStridedPixels, beyond kMaxPixels only
// with windows of kDeepWindow floats or more; stride-1 maps that large stay with Winograd
// (conv_winograd.h), which beats the GEMM there.
#include "error.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "shim_matmul.h"
#include "weight_memory.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace kiln::rt {
namespace {

constexpr int64_t kPatchTag = 0x70617463686d; // "patchm": the patch buffer's scratch tag
constexpr int64_t kPackTag = 0x70636b70746d;  // "pckptm": the permuted, packed weights
constexpr int64_t kMaxPixels = 64;            // see the header comment
constexpr int64_t kMaxStridedPixels = 1024;   // AVX2 only: strided convs (header comment)
constexpr int64_t kStridedMinOutputs = 128;   // their fewest output channels
constexpr int64_t kStridedFewPixels = 256;    // up to here any window; beyond, kDeepWindow+
constexpr int64_t kDeepWindow = 1024;

struct PatchScratch : CacheEntry {
  std::vector<float> rows;
};

struct PackedPatchWeights : CacheEntry {
  std::shared_ptr<void> buffer;
};

std::atomic<int> forcedPatchGemm{-1};

bool routeOn() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_CONV_PATCH_GEMM");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  const int forced = forcedPatchGemm.load(std::memory_order_relaxed);
  return forced < 0 ? on : forced >= 1;
}

/// The GEMM of a conv: [pixels, kh kw C] x [kh kw C, O], C and the residual laid out NHWC.
kiln_matmul_params_v1 patchGemm(const int64_t *wDims, const int64_t *yDims, bool bias,
                                const kiln_conv_params_v1 &p) {
  const int64_t pixels = yDims[0] * yDims[2] * yDims[3];
  const int64_t depth = wDims[1] * wDims[2] * wDims[3];
  kiln_matmul_params_v1 g = pointwiseGemm(pixels, depth, wDims[0], bias, p);
  g.trans_b = 0; // the packed copy is built from the permuted [depth, O] layout
  g.ldb = wDims[0];
  return g;
}

/// Weights OIHW -> [kh][kw][C] x O, row-major (the GEMM's B), then packed into panels.
std::unique_ptr<PackedPatchWeights> packWeights(const float *w, const int64_t *wDims) {
  const int64_t o = wDims[0], c = wDims[1], kh = wDims[2], kw = wDims[3];
  const int64_t depth = c * kh * kw;
  std::vector<float> plain(static_cast<size_t>(depth * o));
  for (int64_t oc = 0; oc < o; ++oc)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
          plain[((i * kw + j) * c + ic) * o + oc] = w[((oc * c + ic) * kh + i) * kw + j];
  auto e = std::make_unique<PackedPatchWeights>();
  e->buffer = allocateWeightBuffer(sizeof(float) * gemvPackedFloats(o, depth));
  packGemvWeights(plain.data(), o, depth, o, false, static_cast<float *>(e->buffer.get()));
  return e;
}

/// out[pixel][(i, j, c)] = x at the pixel's window position (i, j), channel c, or 0 in the pads.
void gatherPatches(const float *x, const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                   const kiln_conv_params_v1 &p, float *out) {
  const int64_t n = xDims[0], c = xDims[1], h = xDims[2], w = xDims[3];
  const int64_t kh = wDims[2], kw = wDims[3], oh = yDims[2], ow = yDims[3];
  const size_t rowBytes = sizeof(float) * c;
  const int64_t pixels = n * oh * ow, depth = kh * kw * c;
  const bool team = !omp_in_parallel() && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(static) if (team)
  for (int64_t px = 0; px < pixels; ++px) {
    const int64_t img = px / (oh * ow), y = px / ow % oh, xo = px % ow;
    float *dst = out + px * depth;
    for (int64_t i = 0; i < kh; ++i) {
      const int64_t ih = y * p.strides[0] - p.pads_begin[0] + i * p.dilations[0];
      const int64_t iw0 = xo * p.strides[1] - p.pads_begin[1];
      if (p.dilations[1] == 1 && ih >= 0 && ih < h && iw0 >= 0 && iw0 + kw <= w) {
        // The window's row is kw x c contiguous floats of the NHWC input.
        std::memcpy(dst, x + ((img * h + ih) * w + iw0) * c, rowBytes * kw);
        dst += kw * c;
        continue;
      }
      for (int64_t j = 0; j < kw; ++j, dst += c) {
        const int64_t iw = iw0 + j * p.dilations[1];
        if (ih < 0 || ih >= h || iw < 0 || iw >= w)
          std::memset(dst, 0, rowBytes);
        else
          std::memcpy(dst, x + ((img * h + ih) * w + iw) * c, rowBytes);
      }
    }
  }
}

} // namespace

void forcePatchGemmRoute(int on) {
  forcedPatchGemm.store(on);
}

bool patchGemmWanted(const int64_t *wDims, const int64_t *yDims, const kiln_conv_params_v1 &p,
                     const float *residual, const float *y) {
  const int isa = usableIsaBits();
  if (!routeOn() || isa < 256 || p.spatial_rank != 2 || p.groups != 1) return false;
  if (wDims[2] * wDims[3] <= 1) return false; // pointwise convs: conv_pointwise.cpp
  const int64_t pixels = yDims[0] * yDims[2] * yDims[3];
  const bool patchify = p.strides[0] == wDims[2] && p.strides[1] == wDims[3] &&
                        p.dilations[0] == 1 && p.dilations[1] == 1;
  const bool strided = p.strides[0] > 1 || p.strides[1] > 1;
  const bool fewPixels = pixels <= kMaxPixels && wDims[0] >= kConvGemmMinOutputs;
  const int64_t window = wDims[1] * wDims[2] * wDims[3];
  const bool avx2Strided = isa == 256 && strided && pixels <= kMaxStridedPixels &&
                           wDims[0] >= kStridedMinOutputs &&
                           (pixels <= kStridedFewPixels || window >= kDeepWindow);
  const bool avx512Patchify = isa >= 512 && patchify && wDims[0] >= kConvGemmMinOutputs;
  const bool anyShape = forcedPatchGemm.load(std::memory_order_relaxed) == 2;
  if (!fewPixels && !avx2Strided && !avx512Patchify && !anyShape) return false;
  return ownGemmFits(patchGemm(wDims, yDims, false, p), true, residual, y);
}

int patchGemmForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                     const int64_t *wDims, const float *bias, const float *residual, float *y,
                     const int64_t *yDims, const kiln_conv_params_v1 &p) {
  try {
    CacheKey key;
    for (int64_t v : {kPackTag, site, static_cast<int64_t>(reinterpret_cast<uintptr_t>(w)),
                      wDims[0], wDims[1], wDims[2], wDims[3]})
      key.push(v);
    auto *packed = static_cast<PackedPatchWeights *>(r.dnnl.findDerived(key));
    if (!packed)
      packed = static_cast<PackedPatchWeights *>(
          r.dnnl.insertDerived(key, packWeights(w, wDims), w,
                               sizeof(float) * wDims[0] * wDims[1] * wDims[2] * wDims[3]));
    const kiln_matmul_params_v1 g = patchGemm(wDims, yDims, bias != nullptr, p);
    std::vector<float> &patches = r.dnnl.scratch<PatchScratch>(kPatchTag).rows;
    if (patches.size() < static_cast<size_t>(g.m * g.k))
      patches.resize(static_cast<size_t>(g.m * g.k));
    gatherPatches(x, xDims, wDims, yDims, p, patches.data());
    packedGemm(patches.data(), static_cast<const float *>(packed->buffer.get()), bias, residual, y,
               g);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt
