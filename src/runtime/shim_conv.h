// Internal entry to the conv shim with the layout strategy explicit (for benchmarks).
#pragma once

#include "runner.h"

#include <kiln/shim.h>

#include <limits>

namespace kiln::rt {

enum class ConvLayout {
  Plain,        // oneDNN works on the caller's NC[D]HW src/dst directly
  Blocked,      // oneDNN picks src/dst layouts; reorders in and out around the conv
  ChannelsLast, // caller's src/dst/residual are N[D]HWC; oneDNN's preferred layout on x86,
                // so consecutive convs run with no reorders at all
};

/// A conv's or GEMM's fused activation as the bounds of a clamp, for the hand-written
/// kernels (Winograd, depthwise, GEMV) that apply it as a min and a max: none is (-inf, inf),
/// ReLU [0, inf), Clip [clip_min, clip_max]. Params: kiln_conv_params_v1 or
/// kiln_matmul_params_v1 (both carry post_op, clip_min, clip_max).
struct ClampBounds {
  float lo, hi;
};
template <class Params> ClampBounds clampBounds(const Params &p) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (p.post_op == KILN_POST_CLIP) return {p.clip_min, p.clip_max};
  return {p.post_op == KILN_POST_RELU ? 0.f : -inf, inf};
}

/// The matmul shim's view of a pointwise conv on `rows` pixels: [rows, cin] x w^T [cin, cout].
kiln_matmul_params_v1 pointwiseGemm(int64_t rows, int64_t cin, int64_t cout, bool bias,
                                    const kiln_conv_params_v1 &p);

/// Fewest output channels for which a conv on few pixels runs as kiln's GEMM with AVX-512
/// (pointwiseAsGemm at 1 thread, patchGemmWanted): both routes were measured with 512+
/// outputs, where the weights stream from memory for a handful of rows; the tile's wider
/// few-row rule (ownGemmFits) came from MobileNetV2's 1x1 GEMMs, not from these convs.
constexpr int64_t kConvGemmMinOutputs = 512;

/// A 2-D 1x1 conv of one group without pads (any strides).
bool pointwiseConv(const int64_t *wDims, const kiln_conv_params_v1 &p);

/// Whether a channels-last conv runs as a GEMM (conv_pointwise.cpp): a pointwise conv whose
/// output dims match its strides, with AVX-512 when it adds a residual or the run has 2+
/// threads or at most 196 pixels into 512+ outputs, below it when kiln's AVX2 GEMM takes it
/// (ownGemmFits) or from 512 output pixels;
/// KILN_CONV_POINTWISE_GEMM=0 turns it off, =all takes every one.
bool pointwiseAsGemm(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                     const kiln_conv_params_v1 &p, bool hasResidual = false);

/// A channels-last pointwise conv through the matmul shim (bias, residual and the post-op in
/// the GEMM's epilogue); strided ones gather their pixels first.
int pointwiseConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims,
                         const float *w, const float *bias, const float *residual, float *y,
                         const int64_t *yDims, const kiln_conv_params_v1 &p);

/// Whether a channels-last KxK conv (K > 1) runs as one GEMM over its patches
/// (conv_patch_gemm.cpp): one group, a shape kiln's GEMM takes (ownGemmFits), and at most 64
/// output pixels into kConvGemmMinOutputs+ outputs (AVX2 or AVX-512), non-overlapping patches
/// (strides = kernel) into as many (AVX-512), or, with AVX2 the widest ISA, a strided conv
/// into 128+ outputs of at most 256 pixels, or up to 1024 with windows of 1024+ floats;
/// KILN_CONV_PATCH_GEMM=0 turns it off. The weights must be a constant (the caller checks).
bool patchGemmWanted(const int64_t *wDims, const int64_t *yDims, const kiln_conv_params_v1 &p,
                     const float *residual, const float *y);

/// Turns the patch GEMM route on (1: its rule, whatever KILN_CONV_PATCH_GEMM says; 2: every
/// shape the GEMM takes, whatever its pixels and outputs) or off (0) for benchmarks and tests;
/// -1 goes back to the environment.
void forcePatchGemmRoute(int on);
/// That conv: patches gathered per call, the permuted weights packed once per constant set.
int patchGemmForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                     const int64_t *wDims, const float *bias, const float *residual, float *y,
                     const int64_t *yDims, const kiln_conv_params_v1 &p);

int convForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                const int64_t *wDims, const float *bias, const float *residual, float *y,
                const int64_t *yDims, const kiln_conv_params_v1 &p, ConvLayout layout);

} // namespace kiln::rt
