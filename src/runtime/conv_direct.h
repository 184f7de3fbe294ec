// kiln's direct convolution of few input channels on channels-last (NHWC) data: a network's
// stem, the first conv on an image of 1-4 channels (MobileNetV2's 3x3 stride 2 into 32,
// ResNet's 7x7 stride 2 into 64), with bias and a clamp fused.
//
// Why not oneDNN: with 3 input channels a conv is a GEMM of depth kh x kw x 3 (27 for a 3x3),
// which oneDNN 2.6's jit:avx2 direct conv ran at 45-63 GFLOP/s on Zen 3 for MobileNetV2's
// stem. This kernel computes 6 output pixels x 16 output channels in registers, the pixels'
// input values broadcast straight from the NHWC rows (the 6 pixels of a tile lie stride x C
// floats apart in the same rows), the weights packed once per constant set into 16-channel
// blocks. Tiles that overhang the image's left or right edge read a zero-padded copy of
// their few input columns, so every pixel runs on the full tile; the last tile of a row
// overlaps its neighbour instead of running narrower. Measured per shape with bench/conv
// (docs/perf.md, session 37).
#pragma once

#include "runner.h"

#include <kiln/shim.h>

#include <cstdint>

namespace kiln::rt {

struct DirectConvParams {
  int64_t n, h, w, c;               // input N, H, W, C
  int64_t o, oh, ow;                // output channels (a multiple of 16), H, W
  int64_t kh, kw, strideH, strideW; // window and strides
  int64_t padTop, padLeft;          // begin pads; end pads follow from oh, ow
  float lo, hi;                     // fused activation bounds
};

/// Output channels per weight block: two AVX2 vectors.
constexpr int64_t kDirectConvBlock = 16;
/// Output pixels per tile (a row of the map needs at least this many).
constexpr int64_t kDirectConvPixels = 6;
/// Floats of the per-thread scratch a tile over an edge reads (the route checks the bound).
constexpr int64_t kDirectConvScratchFloats = 2048;

/// Floats of scratch one tile over an edge needs: kh rows of its input columns.
int64_t directConvScratchFloats(const DirectConvParams &p);

/// ONNX weights [O, C, kh, kw] -> [O / 16][kh][kw][C][16].
void packDirectConvWeights(const float *w, const DirectConvParams &p, float *packed);

/// Output rows [oy0, oy1) of image n, all channels (AVX2 + FMA; conv_direct_avx2.cpp).
/// bias has p.o floats (zeros for none); scratch holds directConvScratchFloats(p).
void directConvRowsAvx2(const DirectConvParams &p, const float *x, const float *packed,
                        const float *bias, float *y, int64_t n, int64_t oy0, int64_t oy1,
                        float *scratch);

/// Whether the conv shim runs a channels-last conv here: AVX2 the widest ISA allowed (oneDNN's
/// AVX-512 kernels were not measured against it), a 2-D conv of one group, 1-4 input
/// channels, a multiple of 16 outputs, windows up to 11 x 11, no dilation and no residual, and
/// at least 6 output columns. KILN_CONV_DIRECT=0 turns it off.
bool directConvWanted(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                      const float *residual, const kiln_conv_params_v1 &p);

/// Forces the route for tests: 1 on every conv the kernel can run (even on AVX-512 CPUs), 0 off,
/// -1 back to directConvWanted's rule.
void forceKilnDirectConv(int on);

/// That conv: weights packed once per constant set (every call when they are data), rows
/// split over the run's threads.
int directConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                      const int64_t *wDims, const float *bias, float *y, const int64_t *yDims,
                      const kiln_conv_params_v1 &p);

} // namespace kiln::rt
