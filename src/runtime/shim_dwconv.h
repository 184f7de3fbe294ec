// The conv shim's route to kiln's depthwise 3x3 kernel (dwconv.h) for channels-last convs.
#pragma once

#include "runner.h"

#include <kiln/shim.h>

#include <vector>

namespace kiln::rt {

/// True when kiln's depthwise kernel computes this conv of c channels (weights wDims): 2-D,
/// groups = c, one [3, 3] filter per channel, dilation 1, equal strides 1 or 2, pads <= 1.
bool dwKernelComputes(const int64_t *wDims, const kiln_conv_params_v1 &p, int64_t c);

/// True when a channels-last conv of these dims runs on kiln's depthwise kernel: 2-D,
/// groups = in = out channels, 3x3, dilation 1, equal strides 1 or 2, pads <= 1, no
/// residual, a shape where the kernel measured faster than oneDNN on this CPU's ISA
/// (bench/conv; docs/perf.md, "Depthwise convolutions"). KILN_CONV_DEPTHWISE=0 turns the
/// route off (A/B runs against oneDNN); KILN_CONV_DEPTHWISE=all takes it for every shape it
/// can run, whatever the rule (tests).
bool useKilnDepthwise(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                      const float *residual, const kiln_conv_params_v1 &p);

/// For tests and benchmarks: 1 takes the depthwise route for every shape it can run, 0
/// never, -1 back to the env and the measured rule.
void forceKilnDepthwise(int on);

/// Depthwise weights w (ONNX [c, 1, 3, 3]) packed for dwConv3x3Nhwc: kept per (site, pointer)
/// when w lies in the runner's constants, else packed into fromData.
const float *dwPackedWeights(Runner &r, int64_t site, const float *w, int64_t c,
                             std::vector<float> &fromData);

/// Runs such a conv (x, y NHWC; w ONNX [C, 1, 3, 3]). Weights that lie in the runner's
/// constants are packed once per (site, pointer) and dropped on a constant update (the derived
/// weights of DnnlCache); others on every call.
int dwConvForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                  const float *bias, float *y, const int64_t *yDims, const kiln_conv_params_v1 &p);

} // namespace kiln::rt
