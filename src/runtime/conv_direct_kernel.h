// The direct conv's rows (conv_direct.h), written for any ISA level: V supplies W lanes (load,
// store, bcast, fma, min, max); conv_direct_avx2.cpp instantiates it. An AVX-512 build (12
// pixels x 32 channels) lost to oneDNN's AVX-512 stems on an Intel Xeon, 1.05-1.13x.
//
// Register tile: Pixels output pixels x 2W output channels (a weight block) in 2 x Pixels
// accumulators. A step of the window (one input value of each pixel at the same ky, kx, c)
// loads the block's two weight vectors and broadcasts Pixels input values: the GEMM tile's
// shape, with the window's row of kw x C values as the GEMM's depth. The steps of one window
// row are contiguous in the NHWC input (kx and c run together), so a window row is one loop;
// the pixels' values lie stride x C floats apart. Stems of 3 channels at stride 2 (6 floats)
// with 3 or 7 columns get compile-time trip counts and offsets.
#pragma once

#include "conv_direct.h"

#include <algorithm>

namespace kiln::rt::direct {

/// Where a tile reads its input: the value of pixel i, window row ky, step t is at
/// base[ky * rowStride + t + i * pixelStride].
struct TileInput {
  const float *base;
  int64_t rowStride;
};

/// Pixels x 2W channels over window rows [ky0, ky1). Taps: steps per window row (kw x C; 0: read
/// from p). PixelStride: floats between the pixels (stride x C; 0: from p).
template <class V, int Pixels, int Taps, int PixelStride>
[[gnu::always_inline]] inline void tile(const DirectConvParams &p, TileInput in,
                                        const float *packedBlock, const float *bias, float *out,
                                        int64_t ky0, int64_t ky1) {
  using Reg = typename V::Reg;
  constexpr int64_t W = V::W, block = 2 * W;
  const int64_t taps = Taps ? Taps : p.kw * p.c;
  const int64_t ps = PixelStride ? PixelStride : p.strideW * p.c;
  const Reg b0 = V::load(bias), b1 = V::load(bias + W);
  Reg acc[Pixels][2];
#pragma GCC unroll 16
  for (int i = 0; i < Pixels; ++i) {
    acc[i][0] = b0;
    acc[i][1] = b1;
  }
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float *xr = in.base + ky * in.rowStride;
    const float *wr = packedBlock + ky * taps * block;
    // Unrolled further (all 9 or 21 steps), the stems ran up to 30% slower on Zen 3.
#pragma GCC unroll 4
    for (int64_t t = 0; t < taps; ++t) {
      const Reg w0 = V::load(wr + t * block), w1 = V::load(wr + t * block + W);
#pragma GCC unroll 16
      for (int i = 0; i < Pixels; ++i) {
        const Reg a = V::bcast(xr[t + i * ps]);
        acc[i][0] = V::fma(a, w0, acc[i][0]);
        acc[i][1] = V::fma(a, w1, acc[i][1]);
      }
    }
  }
  // NaN is max's and min's second operand, so it passes through the clamp.
  const Reg lo = V::bcast(p.lo), hi = V::bcast(p.hi);
#pragma GCC unroll 16
  for (int i = 0; i < Pixels; ++i) {
    V::store(out + i * p.o, V::min(hi, V::max(lo, acc[i][0])));
    V::store(out + i * p.o + W, V::min(hi, V::max(lo, acc[i][1])));
  }
}

/// Copies window rows [ky0, ky1) of the input columns [ix0, ix0 + span) into scratch, zeros
/// where they lie outside the image.
inline TileInput padded(const DirectConvParams &p, const float *image, int64_t iy0, int64_t ix0,
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

template <class V, int Pixels, int Taps, int PixelStride>
void rowsOf(const DirectConvParams &p, const float *x, const float *packed, const float *bias,
            float *y, int64_t n, int64_t oy0, int64_t oy1, float *scratch) {
  constexpr int64_t block = 2 * V::W;
  const int64_t span = (Pixels - 1) * p.strideW + p.kw; // input columns of one tile
  const int64_t blockFloats = p.kh * p.kw * p.c * block;
  const float *image = x + n * p.h * p.w * p.c;
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    const int64_t iy0 = oy * p.strideH - p.padTop;
    // Window rows over the top or bottom pad are skipped.
    const int64_t ky0 = std::max<int64_t>(0, -iy0), ky1 = std::min(p.kh, p.h - iy0);
    float *outRow = y + ((n * p.oh + oy) * p.ow) * p.o;
    for (int64_t t = 0;; ++t) {
      // The last tile overlaps the one before it rather than run fewer pixels.
      const int64_t ox0 = std::min(t * Pixels, p.ow - Pixels);
      const int64_t ix0 = ox0 * p.strideW - p.padLeft;
      const TileInput in = ix0 >= 0 && ix0 + span <= p.w
                               ? TileInput{image + (iy0 * p.w + ix0) * p.c, p.w * p.c}
                               : padded(p, image, iy0, ix0, span, ky0, ky1, scratch);
      for (int64_t b = 0; b * block < p.o; ++b)
        tile<V, Pixels, Taps, PixelStride>(p, in, packed + b * blockFloats, bias + b * block,
                                           outRow + ox0 * p.o + b * block, ky0, ky1);
      if (ox0 + Pixels >= p.ow) break;
    }
  }
}

/// The rows function for p: RGB stems at stride 2 (MobileNetV2's 3x3, ResNet's 7x7) with
/// compile-time steps and offsets, anything else read from p.
template <class V, int Pixels>
void rows(const DirectConvParams &p, const float *x, const float *packed, const float *bias,
          float *y, int64_t n, int64_t oy0, int64_t oy1, float *scratch) {
  if (p.c == 3 && p.strideW == 2 && p.kw == 3)
    rowsOf<V, Pixels, 9, 6>(p, x, packed, bias, y, n, oy0, oy1, scratch);
  else if (p.c == 3 && p.strideW == 2 && p.kw == 7)
    rowsOf<V, Pixels, 21, 6>(p, x, packed, bias, y, n, oy0, oy1, scratch);
  else
    rowsOf<V, Pixels, 0, 0>(p, x, packed, bias, y, n, oy0, oy1, scratch);
}

} // namespace kiln::rt::direct
