// kiln's AVX-512 GEMM (gemm.h; compiled with -mavx512f -mavx2 -mfma).
//
// The same shape as the AVX2 GEMM (gemm_avx2.cpp): B packed once into the GEMV's 16-column
// panels, A read in place (one stream per row), work items of (a group of strips, a group of
// three panels, one K block) with the group's strips under the block. The register
// tile is 9 or 8 rows x 3 panels (27 or 24 zmm accumulators; 3 loads of B and a broadcast of
// A per row per k-step), an asm loop (gemm_avx512_tile.h); partial tiles run through
// intrinsics. On the Intel Xeon of sessions 20-22 every load issued beside the FMAs costs
// FMA throughput (an 8 x 48 tile in L1 reaches 87% of the FMA peak, 9 x 48 91%, one with no
// loads 100%), so the taller tile pays: bench/gemm +1-3% at M >= 128, +7-14% at M = 49.
// K blocks are long (up to 768): the block of B (up to 144 KiB) then streams from L2 for
// each strip rather than staying in L1, and measured faster that way on Zen 5 than L1-sized
// blocks of 128-256 (bench/gemm, rt512 row: 128 x 768 x 768 at 95-98% of the FMA peak with
// blocks of 768, 80-84% with 64-128), where every block restarts the row streams of A and
// reloads C; on the Xeon too, 160-deep blocks left in L1 for all strips but the first were
// 0.97-0.98x in ViT-B/16 (session 22). Each k-step prefetches the B lines kPrefetchSteps
// ahead into L1: the core's own prefetchers trail three streams from L2 (bench/gemm 1-5%
// slower without). The next block's lines go to L2 (prefetcht1) from the first strips of
// each block, one per two k-steps, so they are in before the next work item starts.
#include "gemm_avx512_kernels.h"

#include "aligned_vector.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <limits>

namespace kiln::rt {
namespace {

/// Item `item` of the plan over the K block [pc, pcEnd): its panels' block, under it its
/// group's strips.
void runItem(const GemmParams &g, const Plan &plan, const float *a, const float *packedB, float *c,
             int64_t item, int64_t pc, int64_t pcEnd) {
  const int64_t grp = item / plan.panelGroups, pg = item % plan.panelGroups;
  const int64_t s0 = plan.groupBegin(grp), s1 = plan.groupEnd(grp);
  const int64_t p0 = pg * NV, nv = std::min<int64_t>(NV, plan.panels - p0);
  const int64_t col0 = p0 * NR;
  Tile t;
  t.prefetch = nullptr; // set per strip where it has lines to bring
  t.prefetchRun = 0;
  t.panelStride = g.k * NR;
  t.cols = static_cast<int>(std::min(NV * NR, g.n - col0));
  t.kc = pcEnd - pc;
  t.b = packedB + (p0 * g.k + pc) * NR;
  t.loadC = pc > plan.kStart || plan.inPlace;
  t.last = pcEnd >= plan.kEnd;
  t.bias = t.last && g.bias ? g.bias + col0 : nullptr;
  // The block the next item reads (the next panel group's at this K block) goes to L2 while
  // this block's strips run, a share per strip.
  const bool hasNext = p0 + NV < plan.panels;
  const float *next = hasNext ? packedB + ((p0 + NV) * g.k + pc) * NR : nullptr;
  const int64_t nextPanels = hasNext ? std::min<int64_t>(NV, plan.panels - p0 - NV) : 0;
  // Lines of 16 floats, shared among the first strips at one per two k-steps (or all strips
  // evenly where that is more): same-run A/Bs (bench/gemm, docs/perf.md session 21) against
  // an even share issued at one per k-step from each tile's start gave 49 x 2048 x 512 +6%,
  // 128 x 3072 x 768 +4.5%, 128 x 768 x 3072 +3.7%, M = 196 and 1024 +-1%; one per k-step
  // for the whole tile was 0-3% slower, and an even share spread over each tile 4% slower
  // at M = 196 (its last lines arrive as the next item starts).
  const int64_t lines = t.kc * nextPanels;
  const int64_t evenShare = (lines + (s1 - s0) - 1) / (s1 - s0);
  const int64_t atHalfRate = std::min(lines, std::max<int64_t>(1, t.kc / 2));
  const int64_t share = std::min(t.kc, std::max(evenShare, atHalfRate));
  t.prefetchEvery = std::max<int64_t>(1, t.kc / std::max<int64_t>(1, share));
  t.nextRunLines = t.kc;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t from = (s - s0) * share;
    t.prefetchLines = std::clamp<int64_t>(lines - from, 0, share);
    if (t.prefetchLines > 0) { // a share may cross into the next panel's run
      const int64_t panel = from / t.kc, off = from % t.kc;
      t.prefetch = next + panel * t.panelStride + off * NR;
      t.prefetchRun = t.kc - off;
    }
    const int64_t row0 = plan.row0(s);
    t.c = c + row0 * g.ldc + col0;
    t.r = t.last && plan.residual ? plan.residual + row0 * g.ldr + col0 : nullptr;
    t.rows = static_cast<int>(plan.rows(s, g.m));
    const float *strip = a + row0 * g.lda + pc;
    stripTile(g, t, nv, strip);
  }
}

/// The activation of the GEMM's epilogue on one vector.
[[gnu::always_inline]] inline __m512 postOne(const GemmParams &g, __m512 v) {
  switch (g.post) {
  case GemmPost::GeluErf:
    return geluErf512(v);
  case GemmPost::GeluTanh:
    return geluTanh512(v);
  case GemmPost::Clamp:
    break;
  }
  // NaN is the second operand of max and min, so it passes through.
  return _mm512_min_ps(_mm512_set1_ps(g.hi), _mm512_max_ps(_mm512_set1_ps(g.lo), v));
}

/// C = post(alpha * A * B + beta * bias + residual) with K shared out among `threads`: each
/// sums its share of K over all items into a partial C of its own, then each finishes a
/// share of C's rows from the partials (the epilogue there).
void gemmSplitK(const GemmParams &g, const Plan &plan, int threads, const float *a,
                const float *packedB, float *c) {
  const int64_t mn = g.m * g.n;
  thread_local AlignedVector<float> partials; // grows to the largest call, then stays
  if (partials.size() < static_cast<size_t>(mn * threads))
    partials.resize(static_cast<size_t>(mn * threads));
  float *const sums = partials.data();
  GemmParams gp = g; // the partial sums: no epilogue
  gp.ldc = gp.ldr = g.n;
  gp.alpha = gp.beta = 1.f;
  gp.bias = gp.residual = nullptr;
  gp.post = GemmPost::Clamp;
  gp.lo = -std::numeric_limits<float>::infinity();
  gp.hi = std::numeric_limits<float>::infinity();
  const int64_t items = plan.groups * plan.panelGroups;
#pragma omp parallel num_threads(threads)
  {
    const int th = omp_get_thread_num(), team = omp_get_num_threads();
    Plan share = plan;
    share.inPlace = false;
    share.residual = nullptr;
    share.kStart = g.k * th / team;
    share.kEnd = g.k * (th + 1) / team;
    float *mine = sums + th * mn;
    const int64_t kc = blockDepth(share.kEnd - share.kStart);
    for (int64_t pc = share.kStart; pc < share.kEnd; pc += kc)
      for (int64_t item = 0; item < items; ++item)
        runItem(gp, share, a, packedB, mine, item, pc, std::min(share.kEnd, pc + kc));
#pragma omp barrier
    const __m512 alpha = _mm512_set1_ps(g.alpha), beta = _mm512_set1_ps(g.beta);
    for (int64_t i = g.m * th / team; i < g.m * (th + 1) / team; ++i)
      for (int64_t j = 0; j < g.n; j += NR) {
        const __mmask16 m = static_cast<__mmask16>((1u << std::min<int64_t>(NR, g.n - j)) - 1u);
        __m512 v = _mm512_setzero_ps();
        for (int t = 0; t < team; ++t)
          v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, sums + t * mn + i * g.n + j));
        v = _mm512_mul_ps(v, alpha);
        if (g.bias) v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(m, g.bias + j), v);
        if (g.residual) // in place: C holds it (alpha is 1 then)
          v = _mm512_add_ps(
              v, _mm512_maskz_loadu_ps(m, g.residual + i * (plan.inPlace ? g.ldc : g.ldr) + j));
        _mm512_mask_storeu_ps(c + i * g.ldc + j, m, postOne(g, v));
      }
  }
}

} // namespace

bool gemmAvx512SplitsK(const GemmParams &g, const float *c) {
  return g.m > 0 && g.n > 0 && choosePlan(g, c).splitK;
}

bool gemmAvx512SplitsRows(const GemmParams &g, const float *c) {
  return g.m > 0 && g.n > 0 && choosePlan(g, c).plan.byBounds;
}

void gemmAvx512(const GemmParams &g, const float *a, const float *packedB, float *c) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) return;
  const Choice choice = choosePlan(g, c);
  const Plan &plan = choice.plan;
  const int threads = choice.threads;
  if (choice.splitK) return gemmSplitK(g, plan, threads, a, packedB, c);
  const int64_t kc = blockDepth(g.k);
  const int64_t items = plan.groups * plan.panelGroups;
  // One pass over all items per K block (one pass when K fits a block): the block of A every
  // item of a strip group reads stays in L2 across the panel groups, where walking all of K
  // per item re-read A whole from L3 once K x M outgrew L2 (128 x 768 x 3072: 1.5 MiB of A
  // per panel group; 3-5% faster phased at 1 thread, level to 3% at 2; docs/perf.md,
  // session 20).
  for (int64_t pc = 0; pc < g.k; pc += kc) {
    const int64_t pcEnd = std::min(g.k, pc + kc);
    gemmForEachItem(items, threads,
                    [&](int64_t item) { runItem(g, plan, a, packedB, c, item, pc, pcEnd); });
  }
}

} // namespace kiln::rt
