// kiln_shim_conv_chain_v1: a MobileNet inverted-residual block (1x1 expand, 3x3 depthwise,
// 1x1 project; or depthwise and project alone) run band by band of output rows.
//
// Why: run as three convs, the block writes its expanded activations (6x the input channels;
// 4.8 MB at MobileNetV2's 112x112) to memory and reads them back twice, and on a 1 MiB L2
// those passes cost as much as the arithmetic: in-model, the convs of MobileNetV2's early
// blocks took 1.5-2x their isolated times (docs/perf.md). Here one band of expanded rows (a
// few hundred KB) is computed, filtered and projected while it is in cache; the expanded rows
// a band shares with the next (the depthwise halo) are kept, not recomputed. The 1x1 convs are
// GEMMs through the matmul shim (oneDNN, packed weights), the depthwise conv is kiln's kernel.
#include "conv_chain.h"

#include "aligned_vector.h"
#include "dwconv.h"
#include "error.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "shim_dwconv.h"
#include "shim_matmul.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

namespace kiln::rt {
namespace {

// Tags this shim's scratch entry apart from every site's cache keys.
constexpr int64_t kChainTag = 0x636861696e; // "chain"

// One band's expanded and filtered rows, on cache lines: the depthwise kernel and the GEMMs
// move them in whole vectors, and malloc's 16-byte alignment made each vector straddle two
// lines (MobileNetV2 1.07-1.09x aligned with AVX-512). Below AVX-512 the rows kept that
// 16-byte skew from session 24 to 35 (an Intel Xeon under the AVX2 cap ran aligned rows 3-5%
// slower at 2 threads, unexplained); on Zen 3, a true AVX2 CPU, the depthwise kernel runs
// 1.13-1.65x slower on skewed rows and the chains 4-6% slower at 1 and 2 threads (the two
// alternating in one process; docs/perf.md, session 36).
struct BandBuffers {
  AlignedVector<float> expanded, filtered;
};

// One thread's share of a chain run in lanes: a runner of its own whose oneDNN cache (GEMM
// primitives created single-threaded, stream, weights memo) no other thread touches, on the
// main runner's weight store, so the packed weights are shared, not copied per thread.
struct ChainLane {
  Runner runner;
  BandBuffers buffers;
  int status = KILN_OK;
  std::string error;
};

// Per runner, shared by every chain so the buffers stay in cache from one block to the next.
struct ChainScratch : CacheEntry {
  BandBuffers buffers;
  std::vector<float> dwFromData;
  std::vector<std::unique_ptr<ChainLane>> lanes;
};

bool unitStride(const kiln_conv_params_v1 &p) {
  return p.strides[0] == 1 && p.strides[1] == 1;
}

/// What the depthwise kernel computes, with pads that are not negative.
bool depthwise(const int64_t *wDims, const kiln_conv_params_v1 &p, int64_t c) {
  return dwKernelComputes(wDims, p, c) && p.pads_begin[0] >= 0 && p.pads_begin[1] >= 0 &&
         p.pads_end[0] >= 0 && p.pads_end[1] >= 0;
}

bool knownPostOp(const kiln_conv_params_v1 &p) {
  return p.post_op == KILN_POST_NONE || p.post_op == KILN_POST_RELU || p.post_op == KILN_POST_CLIP;
}

/// Output rows per band of a share of `rows` output rows: the most whose expanded input rows
/// fit `budget` bytes, at least one; all of them when they fit twice the budget (no halo work).
int64_t bandRows(const ChainGeometry &g, int64_t rows, size_t budget) {
  auto inRows = [&](int64_t b) { return std::min(g.h, (b - 1) * g.stride + 3); };
  auto bytes = [&](int64_t b) { return sizeof(float) * inRows(b) * g.w * g.ce; };
  if (bytes(rows) <= 2 * budget) return rows;
  int64_t b = 1;
  while (b < rows && bytes(b + 1) <= budget)
    ++b;
  return b;
}

// What every band of one call shares.
struct ChainCall {
  ChainGeometry g;
  const kiln_conv_chain_params_v1 *p;
  const float *x, *const *w, *const *bias, *residual, *packedDw;
  float *y;
  ClampBounds dwClamp;
  int64_t site, expandSite, projectSite;
  bool blocks; // expanded rows in 16-channel blocks (ChainSchedule::expandInBlocks)
};

constexpr int64_t kBlock = kGemvPanel; // channels per block of expanded rows

/// Keeps expanded rows [need0, have1) of the band, which start `drop` rows into the buffer:
/// moved to its front, in each channel block when the rows are in blocks.
void keepHalo(const ChainCall &c, float *expanded, int64_t drop, int64_t keep,
              int64_t blockStride) {
  const ChainGeometry &g = c.g;
  if (!c.blocks) {
    const int64_t rowE = g.w * g.ce;
    std::memmove(expanded, expanded + drop * rowE, sizeof(float) * keep * rowE);
    return;
  }
  const int64_t row = g.w * kBlock;
  for (int64_t j = 0; j < g.ce / kBlock; ++j) {
    float *block = expanded + j * blockStride;
    std::memmove(block, block + drop * row, sizeof(float) * keep * row);
  }
}

/// Output rows [oy0, oy1) of image img, in bands of `band` rows, through r's GEMMs and the
/// buffers b. The expanded rows one band shares with the next (the depthwise halo) are kept.
int runRows(Runner &r, const ChainCall &c, BandBuffers &b, int64_t img, int64_t oy0, int64_t oy1,
            int64_t band) {
  const ChainGeometry &g = c.g;
  const kiln_conv_chain_params_v1 &p = *c.p;
  const int dw = p.count - 2;
  const int64_t maxIn = std::min(g.h, (band - 1) * g.stride + 3);
  try {
    if (g.expand && b.expanded.size() < static_cast<size_t>(maxIn * g.w * g.ce))
      b.expanded.resize(maxIn * g.w * g.ce);
    if (b.filtered.size() < static_cast<size_t>(band * g.ow * g.ce))
      b.filtered.resize(band * g.ow * g.ce);
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv_chain site %lld: out of memory",
                static_cast<long long>(c.site));
  }
  float *expanded = b.expanded.data(), *filtered = b.filtered.data();
  const int64_t rowIn = g.w * g.cin, rowOut = g.ow * g.cout;
  // Expanded row i of the band at expanded + i * rowE (NHWC), or, in blocks, channel block j
  // of it at expanded + j * blockStride + i * rowE.
  const int64_t rowE = c.blocks ? g.w * kBlock : g.w * g.ce, blockStride = maxIn * g.w * kBlock;
  const float *xi = c.x + img * g.h * rowIn;
  int64_t have0 = 0, have1 = 0; // input rows whose expansion `expanded` holds
  for (int64_t b0 = oy0; b0 < oy1; b0 += band) {
    const int64_t b1 = std::min(oy1, b0 + band);
    const int64_t need0 = std::max<int64_t>(0, b0 * g.stride - g.padTop);
    const int64_t need1 = std::min(g.h, (b1 - 1) * g.stride - g.padTop + 3);
    const float *rows = xi + need0 * rowIn; // the depthwise conv's input band
    if (g.expand) {
      int64_t from = need0;
      if (need0 >= have0 && need0 < have1) {
        keepHalo(c, expanded, need0 - have0, have1 - need0, blockStride);
        from = have1;
      }
      if (from < need1) {
        kiln_matmul_params_v1 e =
            pointwiseGemm((need1 - from) * g.w, g.cin, g.ce, c.bias[0], p.conv[0]);
        const float *a = xi + from * rowIn;
        float *out = expanded + (from - need0) * rowE;
        if (int st = c.blocks
                         ? ownGemmForwardBlocks(r, c.expandSite, a, c.w[0], c.bias[0], out, e,
                                                blockStride)
                         : matmulForward(r, c.expandSite, a, c.w[0], c.bias[0], nullptr, out, e, 1))
          return st;
      }
      have0 = need0;
      have1 = need1;
      rows = expanded;
    }
    DwConvParams d{};
    d.n = 1;
    d.c = g.ce;
    d.h = need1 - need0;
    d.w = g.w;
    d.oh = b1 - b0;
    d.ow = g.ow;
    d.stride = g.stride;
    d.padTop = g.padTop + need0 - b0 * g.stride; // in the band's own row numbers
    d.padLeft = g.padLeft;
    d.clipMin = c.dwClamp.lo;
    d.clipMax = c.dwClamp.hi;
    if (c.blocks) {
      d.inBlock = kBlock;
      d.inBlockStride = blockStride;
    }
    dwConv3x3Nhwc(d, rows, c.packedDw, c.bias[dw], filtered);

    const int64_t out = img * g.oh * rowOut + b0 * rowOut;
    kiln_matmul_params_v1 pr =
        pointwiseGemm((b1 - b0) * g.ow, g.ce, g.cout, c.bias[dw + 1], p.conv[dw + 1]);
    if (int st = matmulForward(r, c.projectSite, filtered, c.w[dw + 1], c.bias[dw + 1],
                               c.residual ? c.residual + out : nullptr, c.y + out, pr, 7))
      return st;
  }
  return KILN_OK;
}

/// Gives a lane the main runner's view of the constants and its weight store.
void syncLane(ChainLane &lane, Runner &r) {
  Runner &l = lane.runner;
  l.pinnedBase = r.pinnedBase;
  l.pinnedSize = r.pinnedSize;
  l.constantRanges = r.constantRanges;
  std::shared_ptr<WeightStore> store = r.dnnl.sharedStore();
  if (&l.dnnl.store() != store.get() || l.weightsToken != r.weightsToken) {
    l.dnnl.useStore(store);
    l.weightsToken = r.weightsToken;
  }
}

/// Each of `threads` threads runs its contiguous share of the n x oh output rows as a lane.
int runLanes(Runner &r, ChainScratch &scratch, const ChainCall &c, int threads, size_t bandBytes) {
  try {
    while (scratch.lanes.size() < static_cast<size_t>(threads))
      scratch.lanes.push_back(std::make_unique<ChainLane>());
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv_chain site %lld: out of memory",
                static_cast<long long>(c.site));
  }
  for (int t = 0; t < threads; ++t)
    syncLane(*scratch.lanes[t], r);
  const int64_t rows = c.g.n * c.g.oh;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    ChainLane &lane = *scratch.lanes[t];
    lane.status = KILN_OK;
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    const int64_t band = bandRows(c.g, std::min(r1 - r0, c.g.oh), bandBytes);
    for (int64_t row = r0; row < r1 && lane.status == KILN_OK;) {
      const int64_t img = row / c.g.oh, oy0 = row % c.g.oh;
      const int64_t oy1 = std::min(c.g.oh, oy0 + (r1 - row));
      lane.status = runRows(lane.runner, c, lane.buffers, img, oy0, oy1, band);
      if (lane.status != KILN_OK) lane.error = lastError(); // this thread's message
      row += oy1 - oy0;
    }
  }
  for (int t = 0; t < threads; ++t)
    if (ChainLane &lane = *scratch.lanes[t]; lane.status != KILN_OK)
      return fail(lane.status, "%s", lane.error.c_str());
  return KILN_OK;
}

} // namespace

ChainSchedule defaultChainSchedule() {
  // 384 KiB of expanded rows per thread: on Zen 4 (1 MiB L2) 256-512 KiB bands ran the blocks
  // fastest (bench/conv, kiln_chain_bench --band-kb; docs/perf.md). Lanes from 3 rows a thread
  // (every MobileNetV2 block at 2 threads) ran its blocks at 0.74-0.76x the convs, lanes from 8
  // rows at 0.76-0.82x: a block whose rows are split differently from the block before moves
  // them between the cores' caches.
  // With AVX2 the widest ISA, lanes from 4 rows: the 7 x 7 blocks (3-4 rows a thread at 2
  // threads) then split each GEMM's columns between the threads instead, so each streams half
  // of the weights rather than all of them for half the rows. MobileNetV2 at 2 threads on Zen
  // 3: 0.955x (10 pairs of runs alternating, 9 faster), its 7 x 7 blocks 0.87-0.98x (session
  // 37). AVX-512 machines were not measured and keep 3.
  static const ChainSchedule schedule = [] {
    const char *band = std::getenv("KILN_CONV_CHAIN_BAND_KB");
    const char *lanes = std::getenv("KILN_CONV_CHAIN_LANE_ROWS");
    long kb = band ? std::atol(band) : 0, rows = lanes ? std::atol(lanes) : -1;
    const int64_t byIsa = usableIsaBits() >= 512 ? 3 : 4;
    const char *blocks = std::getenv("KILN_CONV_CHAIN_BLOCKS");
    // Half the L2, at most 384 KiB (256 on Zen 2 and 3): with the expanded rows in channel blocks,
    // 256 KiB bands ran MobileNetV2 0.4-0.5% faster than 384 at 1 and 2 threads on Zen 2
    // (192: 2% slower; docs/perf.md, session 44). Larger L2s keep 384.
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    const long byL2 = l2 > 0 ? std::clamp<long>(l2 / 2 / 1024, 128, 384) : 384;
    return ChainSchedule{static_cast<size_t>(kb > 0 ? kb : byL2) * 1024, rows >= 0 ? rows : byIsa,
                         !(blocks && std::strcmp(blocks, "0") == 0)};
  }();
  return schedule;
}

int checkConvChain(int64_t site, const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                   const kiln_conv_chain_params_v1 &p, ChainGeometry &g) {
  long long s = static_cast<long long>(site);
  if (p.count != 2 && p.count != 3)
    return fail(KILN_ERR_INVALID_ARGUMENT, "conv_chain site %lld: count %d is not 2 or 3", s,
                p.count);
  const int dw = p.count - 2;
  const int64_t *wExpand = wDims, *wDw = wDims + 4 * dw, *wProject = wDims + 4 * (dw + 1);
  g = {};
  g.n = xDims[0];
  g.cin = xDims[1];
  g.h = xDims[2];
  g.w = xDims[3];
  g.ce = dw == 1 ? wExpand[0] : g.cin;
  g.cout = wProject[0];
  g.oh = yDims[2];
  g.ow = yDims[3];
  g.stride = p.conv[dw].strides[0];
  g.expand = dw == 1;
  bool ok = g.n >= 0 && g.cin > 0 && g.h > 0 && g.w > 0 && g.ce > 0 && g.cout > 0;
  if (ok && g.expand)
    ok = unitStride(p.conv[0]) && pointwiseConv(wExpand, p.conv[0]) && wExpand[1] == g.cin;
  ok = ok && depthwise(wDw, p.conv[dw], g.ce);
  ok = ok && unitStride(p.conv[dw + 1]) && pointwiseConv(wProject, p.conv[dw + 1]) &&
       wProject[1] == g.ce;
  ok = ok && yDims[0] == g.n && yDims[1] == g.cout;
  for (int i = 0; ok && i < 2; ++i)
    ok =
        yDims[2 + i] ==
            (xDims[2 + i] + p.conv[dw].pads_begin[i] + p.conv[dw].pads_end[i] - 3) / g.stride + 1 &&
        yDims[2 + i] > 0;
  for (int i = 0; ok && i < p.count; ++i)
    ok = knownPostOp(p.conv[i]);
  if (!ok)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "conv_chain site %lld: not a [1x1,] depthwise 3x3, 1x1 chain with consistent "
                "dims (x %lldx%lldx%lldx%lld, y %lldx%lldx%lldx%lld)",
                s, static_cast<long long>(xDims[0]), static_cast<long long>(xDims[1]),
                static_cast<long long>(xDims[2]), static_cast<long long>(xDims[3]),
                static_cast<long long>(yDims[0]), static_cast<long long>(yDims[1]),
                static_cast<long long>(yDims[2]), static_cast<long long>(yDims[3]));
  g.padTop = p.conv[dw].pads_begin[0];
  g.padLeft = p.conv[dw].pads_begin[1];
  return KILN_OK;
}

int convChainForward(Runner &r, int64_t site, const float *x, const int64_t *xDims,
                     const float *const *w, const int64_t *wDims, const float *const *bias,
                     const float *residual, float *y, const int64_t *yDims,
                     const kiln_conv_chain_params_v1 &p, const ChainSchedule &schedule) {
  ChainCall c{};
  if (int st = checkConvChain(site, xDims, wDims, yDims, p, c.g)) return st;
  if (c.g.n == 0) return KILN_OK;
  const int dw = p.count - 2;
  c.p = &p;
  c.x = x;
  c.w = w;
  c.bias = bias;
  c.residual = residual;
  c.y = y;
  c.dwClamp = clampBounds(p.conv[dw]);
  c.site = site;
  c.blocks = schedule.expandInBlocks && c.g.expand && c.g.ce % kBlock == 0 &&
             ownGemmBlocksFit(pointwiseGemm(c.g.w, c.g.cin, c.g.ce, bias[0], p.conv[0]),
                              r.isConstant(w[0]));
  // The GEMMs' cache sites: negative, so they never meet a matmul call site's entries.
  c.expandSite = -(site * 4 + 1);
  c.projectSite = -(site * 4 + 2);
  ChainScratch *scratch;
  try {
    scratch = &r.dnnl.scratch<ChainScratch>(kChainTag);
    c.packedDw = dwPackedWeights(r, site, w[dw], c.g.ce, scratch->dwFromData);
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv_chain site %lld: out of memory",
                static_cast<long long>(site));
  }
  const int threads = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  if (threads > 1 && schedule.minLaneRows > 0 && c.g.n * c.g.oh >= schedule.minLaneRows * threads)
    return runLanes(r, *scratch, c, threads, schedule.bandBytesPerThread);
  // One band at a time, each band's GEMMs and depthwise conv split between the threads; bands
  // as large as all threads' budgets together amortise the splits.
  const int64_t band = bandRows(c.g, c.g.oh, schedule.bandBytesPerThread * threads);
  for (int64_t img = 0; img < c.g.n; ++img)
    if (int st = runRows(r, c, scratch->buffers, img, 0, c.g.oh, band)) return st;
  return KILN_OK;
}

} // namespace kiln::rt

extern "C" KILN_RT_API int kiln_shim_conv_chain_v1(kiln_shim_ctx *ctx, int64_t site, const float *x,
                                                   const int64_t *x_dims, const float *const *w,
                                                   const int64_t *w_dims, const float *const *bias,
                                                   const float *residual, float *y,
                                                   const int64_t *y_dims,
                                                   const kiln_conv_chain_params_v1 *params) {
  if (!ctx || !params || !x_dims || !w_dims || !y_dims || !w || !bias)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT,
                          "kiln_shim_conv_chain_v1: NULL ctx, params, dims or pointer arrays");
  if (params->count == 2 || params->count == 3) {
    for (int i = 0; i < params->count; ++i)
      if (!w[i])
        return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT,
                              "kiln_shim_conv_chain_v1 site %lld: NULL weight %d",
                              static_cast<long long>(site), i);
    if ((!x || !y) && x_dims[0] != 0)
      return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT,
                            "kiln_shim_conv_chain_v1 site %lld: NULL x or y",
                            static_cast<long long>(site));
  }
  return kiln::rt::convChainForward(*static_cast<kiln::rt::Runner *>(ctx), site, x, x_dims, w,
                                    w_dims, bias, residual, y, y_dims, *params,
                                    kiln::rt::defaultChainSchedule());
}
