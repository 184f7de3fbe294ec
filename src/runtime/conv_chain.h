// Internal entry to the conv-chain shim (kiln_shim_conv_chain_v1), for tests and benchmarks.
#pragma once

#include "runner.h"

#include <kiln/shim.h>

#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// A chain's dims: x [n, h, w, cin] -> (expand) [n, h, w, ce] -> depthwise [n, oh, ow, ce]
/// -> project [n, oh, ow, cout].
struct ChainGeometry {
  int64_t n, cin, h, w, ce, cout, oh, ow, stride, padTop, padLeft;
  bool expand; // a 1x1 expansion first (count 3)
};

/// Validates a chain's dims and params (KILN_OK and g filled in, or the shim's error).
int checkConvChain(int64_t site, const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                   const kiln_conv_chain_params_v1 &p, ChainGeometry &g);

/// The bytes of expanded rows a band may hold: KILN_CONV_CHAIN_BAND_KB (default 384) KiB per
/// OpenMP thread of the run.
size_t convChainBandBudget();

/// Runs the chain band by band, each band's expanded rows within bandBudget bytes (the
/// whole map at once when it fits twice that).
int convChainForward(Runner &r, int64_t site, const float *x, const int64_t *xDims,
                     const float *const *w, const int64_t *wDims, const float *const *bias,
                     const float *residual, float *y, const int64_t *yDims,
                     const kiln_conv_chain_params_v1 &p, size_t bandBudget);

} // namespace kiln::rt
