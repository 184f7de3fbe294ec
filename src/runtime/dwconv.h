// kiln's own depthwise 3x3 convolution on channels-last (NHWC) activations, with bias and a
// clamp fused (ReLU = [0, inf), ReLU6 = [0, 6], none = (-inf, inf)).
//
// Why not oneDNN: oneDNN 2.6 on NHWC depthwise convs pays a reorder to its blocked layout
// and back around each call, and XNNPACK's threads (pthreadpool) would spin against kiln's
// OpenMP threads on the same cores. This kernel splits rows x channel chunks over the
// run's OpenMP threads and reads weights packed once per constant set (packDwWeights);
// measured per shape with bench/conv (docs/perf.md, "Depthwise convolutions").
#pragma once

#include <cstdint>

namespace kiln::rt {

struct DwConvParams {
  int64_t n, h, w, c;      // input N, H, W, C (C = groups = output channels)
  int64_t oh, ow;          // output H, W
  int64_t stride;          // same in both dims (1 or 2)
  int64_t padTop, padLeft; // begin pads; end pads follow from oh/ow
  float clipMin, clipMax;  // fused activation bounds
  // The input in channel blocks when inBlock > 0 (a multiple of every kernel's lanes, dividing
  // c): channels [j inBlock, (j + 1) inBlock) of every pixel at x + j inBlockStride, pixels
  // inBlock floats apart. The kernel walks one channel vector over all pixels, and NHWC rows
  // put each of its loads on another cache line (MobileNetV2's maps 1.1-2.2x slower on Zen 2).
  int64_t inBlock = 0, inBlockStride = 0;
};

/// ONNX depthwise weights [C, 1, 3, 3] -> [3, 3, C] (tap-major, channels contiguous).
void packDwWeights(const float *w, int64_t c, float *packed);

/// y[n, oy, ox, c] = clamp(bias[c] + sum_{kh,kw} x[n, oy*s-pt+kh, ox*s-pl+kw, c] *
/// packed[kh, kw, c]); taps outside the input count as zero. bias may be nullptr. y is NHWC;
/// x too unless p.inBlock says otherwise.
void dwConv3x3Nhwc(const DwConvParams &p, const float *x, const float *packed, const float *bias,
                   float *y);

/// Kernels of one ISA level (dwconv_kernel.h); picked at run time from CPUID.
struct DwRowKernel {
  const char *name;
  int lanes;
  /// Channels [c0, c1) of output rows [oy0, oy1) of image n; c0 a multiple of `lanes`, c1
  /// too or p.c.
  void (*rows)(const DwConvParams &p, const float *x, const float *packed, const float *bias,
               float *y, int64_t n, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1);
};
const DwRowKernel &dwAvx512Kernel();
const DwRowKernel &dwAvx2Kernel();
const DwRowKernel &dwGenericKernel();

/// The kernel dwConv3x3Nhwc uses now (the best for this CPU unless forced).
const DwRowKernel &activeDwKernel();

enum class DwIsa { Auto, Avx512, Avx2, Generic };
/// Forces one kernel set (tests compare them); false, changing nothing, when this CPU cannot
/// run it.
bool forceDwIsa(DwIsa isa);

} // namespace kiln::rt
