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

/// How a chain call is cut up.
struct ChainSchedule {
  /// Bytes of expanded rows a band may hold per thread (KILN_CONV_CHAIN_BAND_KB; default 384
  /// KiB, or half the L2 where that is less, down to 128).
  size_t bandBytesPerThread;
  /// At T > 1 threads, each thread runs its own share of the output rows (a lane) when every
  /// share has at least this many rows; otherwise the threads split each band's GEMMs and
  /// depthwise conv. 0: never lanes. (KILN_CONV_CHAIN_LANE_ROWS; default 3 with AVX-512, 4
  /// below it.)
  int64_t minLaneRows;
  /// The expansion writes its rows in 16-channel blocks for the depthwise conv where kiln's
  /// AVX2 GEMM runs it (ownGemmBlocksFit) and the channels are whole blocks; else NHWC rows.
  /// (KILN_CONV_CHAIN_BLOCKS=0: always NHWC.)
  bool expandInBlocks;
};

/// The schedule of shim calls (environment read once).
ChainSchedule defaultChainSchedule();

/// Runs the chain band by band (the whole map at once when its expanded rows fit twice the
/// band budget), at omp_get_max_threads() threads.
int convChainForward(Runner &r, int64_t site, const float *x, const int64_t *xDims,
                     const float *const *w, const int64_t *wDims, const float *const *bias,
                     const float *residual, float *y, const int64_t *yDims,
                     const kiln_conv_chain_params_v1 &p, const ChainSchedule &schedule);

} // namespace kiln::rt
