// Channels-last 1x1 convolutions as GEMMs through the matmul shim.
//
// Why: on NHWC data a 1x1 conv is [pixels, cin] x w^T [cin, cout]. oneDNN 2.6 runs it as
// brgconv_1x1, which on Zen 4 (AVX-512) reached 65-75% of the FMA peak in ResNet-50 where
// its matmul on the same shapes reached 85-95% (docs/perf.md, session 14), and brgconv cannot
// take the residual as a post-op (shim_conv.cpp), so the bottleneck blocks' last conv paid a
// separate add pass over its output. The matmul shim packs the weights once, fuses bias,
// residual and ReLU/clip in its epilogue, and keeps kiln's GEMV and column-block choices.
// A strided 1x1 conv (ResNet's downsample) first gathers the pixels it reads into a
// contiguous block, a copy of at most a quarter of its input. Where it runs is measured
// (pointwiseAsGemm; docs/perf.md, session 14).
#include "error.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "shim_matmul.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace kiln::rt {
namespace {

// The gather buffer's scratch tag (DnnlCache::scratch).
constexpr int64_t kGatherTag = 0x707767617468; // "pwgath"

// Fewest output pixels for which the sgemm route (below AVX-512) pays off.
constexpr int64_t kMinSgemmPixels = 512;

// Most output pixels for which kiln's GEMM takes a wide (kConvGemmMinOutputs+) 1x1 conv at
// 1 thread too.
constexpr int64_t kMaxFewPixels = 196;

// Per runner, shared by every strided pointwise conv.
struct GatherScratch : CacheEntry {
  std::vector<float> rows;
};

/// KILN_CONV_POINTWISE_GEMM: 0 off, `all` at any thread count, else the measured rule.
enum class Route { Off, Measured, All };

Route route() {
  static const Route r = [] {
    const char *v = std::getenv("KILN_CONV_POINTWISE_GEMM");
    if (v && std::strcmp(v, "0") == 0) return Route::Off;
    if (v && std::strcmp(v, "all") == 0) return Route::All;
    return Route::Measured;
  }();
  return r;
}

/// Copies the pixels a strided 1x1 conv reads (every stride-th row and column of each image)
/// into `out`, one row of cin floats per output pixel.
void gatherStrided(const float *x, const int64_t *xDims, const int64_t *yDims,
                   const kiln_conv_params_v1 &p, float *out) {
  const int64_t n = xDims[0], c = xDims[1], h = xDims[2], w = xDims[3];
  const int64_t oh = yDims[2], ow = yDims[3], sh = p.strides[0], sw = p.strides[1];
  const size_t rowBytes = sizeof(float) * c;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t img = 0; img < n; ++img)
    for (int64_t i = 0; i < oh; ++i) {
      const float *src = x + ((img * h + i * sh) * w) * c;
      float *dst = out + ((img * oh + i) * ow) * c;
      for (int64_t j = 0; j < ow; ++j)
        std::memcpy(dst + j * c, src + j * sw * c, rowBytes);
    }
}

} // namespace

kiln_matmul_params_v1 pointwiseGemm(int64_t rows, int64_t cin, int64_t cout, bool bias,
                                    const kiln_conv_params_v1 &p) {
  kiln_matmul_params_v1 g{};
  g.batch = 1;
  g.m = rows;
  g.n = cout;
  g.k = cin;
  g.lda = cin;
  g.ldb = cin;
  g.ldc = cout;
  g.trans_b = 1;
  g.post_op = p.post_op;
  g.clip_min = p.clip_min;
  g.clip_max = p.clip_max;
  g.alpha = 1.f;
  g.beta = 1.f;
  g.addend_kind = bias ? 1 : 0;
  return g;
}

bool pointwiseConv(const int64_t *wDims, const kiln_conv_params_v1 &p) {
  return p.spatial_rank == 2 && p.groups == 1 && wDims[2] == 1 && wDims[3] == 1 &&
         p.pads_begin[0] == 0 && p.pads_begin[1] == 0 && p.pads_end[0] == 0 && p.pads_end[1] == 0;
}

bool pointwiseAsGemm(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                     const kiln_conv_params_v1 &p, bool hasResidual) {
  if (route() == Route::Off || !pointwiseConv(wDims, p)) return false;
  // The output must be exactly the pixels the strides pick (pads are zero, so it is unless
  // the dims are inconsistent, which the oneDNN path then reports).
  for (int i = 0; i < 2; ++i)
    if (p.strides[i] < 1 || yDims[2 + i] != (xDims[2 + i] - 1) / p.strides[i] + 1) return false;
  // Below AVX-512, oneDNN 2.6's matmul is its sgemm, which packs B on every call: with few
  // pixels per weight that packing costs more than the GEMM saves (ResNet-50 under the AVX2
  // cap: 3136 and 784 pixels 0.66-0.91x the conv's time, 196 and 49 pixels 1.3-1.8x).
  // kiln's AVX2 GEMM (gemm.h) packs its weight once, so every size it takes goes.
  const int64_t pixels = yDims[0] * yDims[2] * yDims[3];
  if (usableIsaBits() < 512) {
    const kiln_matmul_params_v1 g = pointwiseGemm(pixels, wDims[1], wDims[0], false, p);
    return ownGemmFits(g, true, nullptr, nullptr) || pixels >= kMinSgemmPixels;
  }
  // With AVX-512, brgconv_1x1 held its own at 1 thread (ResNet-50: 1.00-1.01x on Zen 4,
  // 1.04-1.07x slower as GEMMs on Sapphire Rapids) while the GEMMs won at 2 (0.89-0.91x).
  // Except with a residual: brgconv then leaves the add to a second pass over the output
  // (shim_conv.cpp), which the GEMM's epilogue saves (ResNet-50's last conv of each block at 1
  // thread, Intel Xeon: 0.73 against 0.87 ms at 56 x 56, 0.81 against 0.89 at 7 x 7; the
  // model 0.97x). And with few pixels and wide weights (512+ outputs), where the
  // weights stream from memory for a handful of rows: ResNet-50's layer4 1x1 convs (49
  // pixels) 0.77-0.84x brgconv's time, layer3's strided downsample and layer4's first 1x1
  // (196 pixels) 0.90-0.92x; with 256 outputs (oneDNN's matmul then) 1.04x, so those stay.
  const bool fewPixelsWide =
      pixels <= kMaxFewPixels && wDims[0] >= kConvGemmMinOutputs &&
      ownGemmFits(pointwiseGemm(pixels, wDims[1], wDims[0], false, p), true, nullptr, nullptr);
  return route() == Route::All || hasResidual || fewPixelsWide ||
         (!omp_in_parallel() && omp_get_max_threads() > 1);
}

int pointwiseConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims,
                         const float *w, const float *bias, const float *residual, float *y,
                         const int64_t *yDims, const kiln_conv_params_v1 &p) {
  const int64_t rows = yDims[0] * yDims[2] * yDims[3];
  const float *a = x;
  if (p.strides[0] != 1 || p.strides[1] != 1) {
    try {
      std::vector<float> &gathered = r.dnnl.scratch<GatherScratch>(kGatherTag).rows;
      const size_t need = static_cast<size_t>(rows * xDims[1]);
      if (gathered.size() < need) gathered.resize(need);
      gatherStrided(x, xDims, yDims, p, gathered.data());
      a = gathered.data();
    } catch (const std::bad_alloc &) {
      return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory",
                  static_cast<long long>(site));
    }
  }
  kiln_matmul_params_v1 g = pointwiseGemm(rows, xDims[1], yDims[1], bias, p);
  return matmulForward(r, site, a, w, bias, residual, y, g, 7);
}

} // namespace kiln::rt
