// Internal entry to the conv shim with the layout strategy explicit (for benchmarks).
#pragma once

#include "runner.h"

#include <kiln/shim.h>

namespace kiln::rt {

enum class ConvLayout {
  Plain,        // oneDNN works on the caller's NC[D]HW src/dst directly
  Blocked,      // oneDNN picks src/dst layouts; reorders in and out around the conv
  ChannelsLast, // caller's src/dst/residual are N[D]HWC; oneDNN's preferred layout on x86,
                // so consecutive convs run with no reorders at all
};

int convForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                const int64_t *wDims, const float *bias, const float *residual, float *y,
                const int64_t *yDims, const kiln_conv_params_v1 &p, ConvLayout layout);

} // namespace kiln::rt
