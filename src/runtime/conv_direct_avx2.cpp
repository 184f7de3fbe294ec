// The direct conv's rows on AVX2 + FMA (compiled with -mavx2 -mfma; conv_direct.h).
//
// Register tile: 6 output pixels x 16 output channels in 12 ymm accumulators. A step of the
// window (one input value of each pixel at the same ky, kx, c) loads two vectors of the
// packed weights and broadcasts six input values, 12 FMAs: the AVX2 GEMM tile's shape, with
// the window's row of kw x C values as the GEMM's depth. The steps of one window row are
// contiguous in the NHWC input (kx and c run together), so a window row is one loop; the
// pixels' values lie stride x C floats apart. Stems of 3 channels at stride 2 (6 floats) with
// 3 or 7 columns get compile-time trip counts and offsets.
#include "conv_direct.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr int NP = static_cast<int>(kDirectConvPixels);
constexpr int64_t OB = kDirectConvBlock;

/// Where a tile reads its input: the value of pixel i, window row ky, step t is at
/// base[ky * rowStride + t + i * pixelStride].
struct TileInput {
  const float *base;
  int64_t rowStride;
};

/// 6 pixels x 16 channels over window rows [ky0, ky1). Taps: steps per window row (kw x C;
/// 0: read from p). PixelStride: floats between the pixels (stride x C; 0: from p).
template <int Taps, int PixelStride>
[[gnu::always_inline]] inline void tile(const DirectConvParams &p, TileInput in,
                                        const float *packedBlock, const float *bias, float *out,
                                        int64_t ky0, int64_t ky1) {
  const int64_t taps = Taps ? Taps : p.kw * p.c;
  const int64_t ps = PixelStride ? PixelStride : p.strideW * p.c;
  const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
  __m256 acc[NP][2];
#pragma GCC unroll 6
  for (int i = 0; i < NP; ++i) {
    acc[i][0] = b0;
    acc[i][1] = b1;
  }
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float *xr = in.base + ky * in.rowStride;
    const float *wr = packedBlock + ky * taps * OB;
    // Unrolled further (all 9 or 21 steps), the stems ran up to 30% slower on Zen 3.
#pragma GCC unroll 4
    for (int64_t t = 0; t < taps; ++t) {
      const __m256 w0 = _mm256_loadu_ps(wr + t * OB), w1 = _mm256_loadu_ps(wr + t * OB + 8);
#pragma GCC unroll 6
      for (int i = 0; i < NP; ++i) {
        const __m256 a = _mm256_broadcast_ss(xr + t + i * ps);
        acc[i][0] = _mm256_fmadd_ps(a, w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(a, w1, acc[i][1]);
      }
    }
  }
  // NaN is max's and min's second operand, so it passes through the clamp.
  const __m256 lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi);
#pragma GCC unroll 6
  for (int i = 0; i < NP; ++i) {
    _mm256_storeu_ps(out + i * p.o, _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][0])));
    _mm256_storeu_ps(out + i * p.o + 8, _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][1])));
  }
}

/// Copies window rows [ky0, ky1) of the input columns [ix0, ix0 + span) into scratch, zeros
/// where they lie outside the image.
TileInput padded(const DirectConvParams &p, const float *image, int64_t iy0, int64_t ix0,
                 int64_t span, int64_t ky0, int64_t ky1, float *scratch) {
  const int64_t rowStride = span * p.c;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    float *dst = scratch + ky * rowStride;
    const float *src = image + (iy0 + ky) * p.w * p.c;
    for (int64_t j = 0; j < span; ++j) {
      const int64_t ix = ix0 + j;
      const bool inside = ix >= 0 && ix < p.w;
      for (int64_t c = 0; c < p.c; ++c)
        dst[j * p.c + c] = inside ? src[ix * p.c + c] : 0.f;
    }
  }
  return {scratch, rowStride};
}

template <int Taps, int PixelStride>
void rows(const DirectConvParams &p, const float *x, const float *packed, const float *bias,
          float *y, int64_t n, int64_t oy0, int64_t oy1, float *scratch) {
  const int64_t span = (NP - 1) * p.strideW + p.kw; // input columns of one tile
  const int64_t blockFloats = p.kh * p.kw * p.c * OB;
  const float *image = x + n * p.h * p.w * p.c;
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    const int64_t iy0 = oy * p.strideH - p.padTop;
    // Window rows over the top or bottom pad are skipped.
    const int64_t ky0 = std::max<int64_t>(0, -iy0), ky1 = std::min(p.kh, p.h - iy0);
    float *outRow = y + ((n * p.oh + oy) * p.ow) * p.o;
    for (int64_t t = 0;; ++t) {
      // The last tile overlaps the one before it rather than run fewer pixels.
      const int64_t ox0 = std::min(t * NP, p.ow - NP);
      const int64_t ix0 = ox0 * p.strideW - p.padLeft;
      const TileInput in = ix0 >= 0 && ix0 + span <= p.w
                               ? TileInput{image + (iy0 * p.w + ix0) * p.c, p.w * p.c}
                               : padded(p, image, iy0, ix0, span, ky0, ky1, scratch);
      for (int64_t b = 0; b * OB < p.o; ++b)
        tile<Taps, PixelStride>(p, in, packed + b * blockFloats, bias + b * OB,
                                outRow + ox0 * p.o + b * OB, ky0, ky1);
      if (ox0 + NP >= p.ow) break;
    }
  }
}

} // namespace

void directConvRowsAvx2(const DirectConvParams &p, const float *x, const float *packed,
                        const float *bias, float *y, int64_t n, int64_t oy0, int64_t oy1,
                        float *scratch) {
  // RGB stems at stride 2: MobileNetV2's 3x3 and ResNet's 7x7.
  if (p.c == 3 && p.strideW == 2 && p.kw == 3)
    rows<9, 6>(p, x, packed, bias, y, n, oy0, oy1, scratch);
  else if (p.c == 3 && p.strideW == 2 && p.kw == 7)
    rows<21, 6>(p, x, packed, bias, y, n, oy0, oy1, scratch);
  else
    rows<0, 0>(p, x, packed, bias, y, n, oy0, oy1, scratch);
}

} // namespace kiln::rt
