// kiln's direct convolution of few input channels on channels-last (NHWC) data: a network's
// stem, the first conv on an image of 1-4 channels (MobileNetV2's 3x3 stride 2 into 32,
// ResNet's 7x7 stride 2 into 64), with bias and a clamp fused.
//
// Why not oneDNN: with 3 input channels a conv is a GEMM of depth kh x kw x 3 (27 for a 3x3),
// which oneDNN 2.6's jit:avx2 direct conv ran at 45-63 GFLOP/s on Zen 3 for MobileNetV2's
// stem. This kernel computes a tile of output pixels x two vectors of output channels in
// registers (6 x 16 with AVX2), the pixels' input values broadcast
// straight from the NHWC rows (a tile's pixels lie stride x C floats apart in the same rows),
// the weights packed once per constant set into blocks of the tile's channels. Tiles that overhang
// the image's left or right edge read a zero-padded copy of their few input columns, so every pixel
// runs on the full tile; the last tile of a row overlaps its neighbour instead of running narrower.
// Measured per shape with bench/conv (docs/perf.md, session 37).
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

/// Floats of the per-thread scratch a tile over an edge reads: the route's bounds (C <= 4,
/// windows <= 11 x 11, strides <= 4) keep a 6-pixel tile under it; directConvForward checks.
constexpr int64_t kDirectConvScratchFloats = 4096;

/// The rows of one ISA level (conv_direct_kernel.h): a tile of `pixels` output pixels x `block`
/// output channels (two vectors); weights packed in blocks of `block` channels.
struct DirectConvKernel {
  int64_t block, pixels;
  /// Output rows [oy0, oy1) of image n, all channels; bias has p.o floats (zeros for none),
  /// scratch directConvScratchFloats(p, pixels).
  void (*rows)(const DirectConvParams &p, const float *x, const float *packed, const float *bias,
               float *y, int64_t n, int64_t oy0, int64_t oy1, float *scratch);
};
const DirectConvKernel &directConvAvx2Kernel();
/// The AVX2 kernel where this CPU runs it and ONEDNN_MAX_CPU_ISA allows it; null otherwise.
const DirectConvKernel *activeDirectConvKernel();

/// Floats of scratch one tile of `pixels` over an edge needs: kh rows of its input columns.
int64_t directConvScratchFloats(const DirectConvParams &p, int64_t pixels);

/// ONNX weights [O, C, kh, kw] -> [O / block][kh][kw][C][block].
void packDirectConvWeights(const float *w, const DirectConvParams &p, int64_t block, float *packed);

/// Whether the conv shim runs a channels-last conv here: AVX2 the widest ISA allowed (oneDNN's
/// AVX-512 kernels were not measured against it), a 2-D conv of one group, 1-4 input
/// channels, whole weight blocks of outputs (16), windows up to
/// 11 x 11, strides up to 4, no dilation and no residual, and at least a tile's pixels of
/// output columns. KILN_CONV_DIRECT=0 turns it off.
bool directConvWanted(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                      const float *residual, const kiln_conv_params_v1 &p);

/// Forces the route for tests and benchmarks: 1 on every conv the kernel can run (also on
/// AVX-512 CPUs), 0 off, -1 back to directConvWanted's rule.
void forceKilnDirectConv(int on);

/// That conv: weights packed once per constant set (every call when they are data), rows
/// split over the run's threads.
int directConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                      const int64_t *wDims, const float *bias, float *y, const int64_t *yDims,
                      const kiln_conv_params_v1 &p);

} // namespace kiln::rt
