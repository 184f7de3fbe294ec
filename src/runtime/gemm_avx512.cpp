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
#include "gemm.h"

#include "aligned_vector.h"
#include "gelu_avx512.h"
#include "gemm_avx512_plan.h"
#include "gemm_avx512_tile.h"
#include "gemv.h"

#include <immintrin.h>
#include <omp.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <limits>

namespace kiln::rt {
namespace {

using namespace avx512plan;

// Each full tile first asks for its C (and residual) lines into L2, so that its epilogue's
// loads, and the stores' reads for ownership, do not wait on L3 or memory after the k-loop:
// at M = 1024 C outgrows L2 and the epilogue was 6.3% of BERT-base b8's time, 3.2% with
// these (the model 2% faster, docs/perf.md session 30). KILN_GEMM_PREFETCH_C=0 for A/Bs.
const bool prefetchC = envInt("KILN_GEMM_PREFETCH_C", 1) != 0;
constexpr int64_t kPrefetchSteps = 8; // k-steps ahead each B stream is prefetched into L1
// (the asm tile has it as byte offsets: 512 = 8 x 64)

struct Tile {
  const float *b;      // the first panel at this K block: kc x NR, panels panelStride apart
  int64_t panelStride; // floats from one panel to the next (k x NR)
  int64_t kc;          // k-steps in the block
  // Lines of the next B block this tile brings to L2: prefetchLines of them from `prefetch`,
  // one per prefetchEvery k-steps, prefetchRun to the end of its panel's run, then on at the
  // next panel (panelStride on from the run's start) for runs of nextRunLines.
  const float *prefetch;
  int64_t prefetchLines, prefetchEvery, prefetchRun, nextRunLines;
  float *c;          // C at the tile's top-left
  const float *r;    // the residual at the tile's top-left (last block), or null
  const float *bias; // bias at the tile's first column (last block), or null
  int rows, cols;    // valid rows (<= MR) and columns (<= NV x NR)
  bool loadC;        // add C's contents (a later K block, or an in-place residual)
  bool last;         // the last K block: apply the epilogue
};

template <int R, int NV> struct Acc { __m512 v[R][NV]; };

template <int R, int NV, class F> [[gnu::always_inline]] inline void forAll(Acc<R, NV> &acc, F f) {
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc.v[i][j] = f(acc.v[i][j]);
}

/// Adds R rows of src (row stride ld; masked columns) to the tile.
template <int R, int NV>
[[gnu::always_inline]] inline void addRows(Acc<R, NV> &acc, const float *src, int64_t ld,
                                           const __mmask16 *mask) {
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc.v[i][j] =
          _mm512_add_ps(acc.v[i][j], _mm512_maskz_loadu_ps(mask[j], src + i * ld + NR * j));
  }
}

template <int R, int NV>
[[gnu::always_inline]] inline void epilogue(Acc<R, NV> &acc, const GemmParams &g, const Tile &t,
                                            const __mmask16 *mask) {
  if (g.alpha != 1.f) {
    const __m512 alpha = _mm512_set1_ps(g.alpha);
    forAll(acc, [alpha](__m512 v) { return _mm512_mul_ps(v, alpha); });
  }
  if (t.bias) {
    const __m512 beta = _mm512_set1_ps(g.beta);
    __m512 b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      b[j] = _mm512_mul_ps(beta, _mm512_maskz_loadu_ps(mask[j], t.bias + NR * j));
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        acc.v[i][j] = _mm512_add_ps(acc.v[i][j], b[j]);
  }
  if (t.r) addRows(acc, t.r, g.ldr, mask);
  switch (g.post) {
  case GemmPost::Clamp:
    if (clampBounds(g)) {
      // NaN is the second operand of max and min, so it passes through.
      const __m512 lo = _mm512_set1_ps(g.lo), hi = _mm512_set1_ps(g.hi);
      forAll(acc, [lo, hi](__m512 v) { return _mm512_min_ps(hi, _mm512_max_ps(lo, v)); });
    }
    break;
  case GemmPost::GeluErf:
    forAll(acc, [](__m512 v) { return geluErf512(v); });
    break;
  case GemmPost::GeluTanh:
    forAll(acc, [](__m512 v) { return geluTanh512(v); });
    break;
  }
}

/// The tile's accumulators into C: C's contents added where t.loadC, the epilogue after the
/// last K block, the valid columns stored. Every tile is as tall as its strip (R = t.rows).
template <int R, int NV> void finish(const GemmParams &g, const Tile &t, Acc<R, NV> &acc) {
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) {
    const int valid = std::clamp(t.cols - static_cast<int>(NR) * j, 0, 16);
    mask[j] = static_cast<__mmask16>((1u << valid) - 1u);
  }
  if (t.loadC) addRows(acc, t.c, g.ldc, mask);
  if (t.last) epilogue(acc, g, t, mask);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      _mm512_mask_storeu_ps(t.c + i * g.ldc + NR * j, mask[j], acc.v[i][j]);
  }
}

/// One R x (NV x 16) tile over one K block; `a` holds its R row pointers at the block.
template <int R, int NV> void tile(const GemmParams &g, const Tile &t, const float *const *a) {
  Acc<R, NV> acc;
  forAll(acc, [](__m512) { return _mm512_setzero_ps(); });
  const float *b[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j)
    b[j] = t.b + j * t.panelStride;
  const float *pf = t.prefetch;
  int64_t pfLeft = t.prefetchLines, pfRun = t.prefetchRun, pfStep = 0;
  for (int64_t kk = 0; kk < t.kc; ++kk) {
    if (kk == pfStep && pfLeft > 0) {
      _mm_prefetch(reinterpret_cast<const char *>(pf), _MM_HINT_T1);
      pf += NR;
      if (--pfRun == 0) {
        pf += t.panelStride - t.nextRunLines * NR;
        pfRun = t.nextRunLines;
      }
      --pfLeft;
      pfStep += t.prefetchEvery;
    }
    // Past the block's end these touch the next block or panel (prefetches do not fault).
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      _mm_prefetch(reinterpret_cast<const char *>(b[j] + (kk + kPrefetchSteps) * NR), _MM_HINT_T0);
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      bv[j] = _mm512_loadu_ps(b[j] + kk * NR);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(a[i][kk]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j)
        acc.v[i][j] = _mm512_fmadd_ps(av, bv[j], acc.v[i][j]);
    }
  }

  finish(g, t, acc);
}

/// A full R x 48 tile (R = 8 or 9) through the asm loop (gemm_avx512_tile.h); `a` is its
/// first row at the block, the rows lda apart.
template <int R> void fullTile(const GemmParams &g, const Tile &t, const float *a) {
  alignas(64) float sums[R * NV * NR];
  if (prefetchC) {
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < NV; ++j) {
        _mm_prefetch(reinterpret_cast<const char *>(t.c + i * g.ldc + NR * j), _MM_HINT_T1);
        if (t.r)
          _mm_prefetch(reinterpret_cast<const char *>(t.r + i * g.ldr + NR * j), _MM_HINT_T1);
      }
  }
  avx512tile::FullTileArgs f;
  f.a = a;
  f.lda = g.lda;
  f.b = t.b;
  f.panelStride = t.panelStride;
  f.kc = t.kc;
  f.prefetch = reinterpret_cast<const char *>(t.prefetch);
  f.prefetchLines = t.prefetchLines;
  f.perPass = t.prefetchEvery == 1 ? 2 : 1;
  f.run = t.prefetchRun;
  f.jumpBytes = (t.panelStride - t.nextRunLines * NR) * static_cast<int64_t>(sizeof(float));
  f.nextRun = t.nextRunLines;
  f.out = sums;
  avx512tile::fullTile<R>(f);
  Acc<R, NV> acc;
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc.v[i][j] = _mm512_load_ps(sums + (i * NV + j) * NR);
  finish(g, t, acc);
}

/// A tile of R = t.rows rows through the intrinsics (fewer than three panels, or a last strip
/// of fewer than 8 rows); `a` is A at the strip's first row and the block's first column.
template <int R> void smallTile(const GemmParams &g, const Tile &t, int64_t nv, const float *a) {
  const float *rows[R];
  for (int i = 0; i < R; ++i)
    rows[i] = a + i * g.lda;
  if (nv == NV)
    tile<R, NV>(g, t, rows);
  else if (nv == 2)
    tile<R, 2>(g, t, rows);
  else
    tile<R, 1>(g, t, rows);
}

/// smallTile for t.rows: a last strip of fewer than 8 rows computes only those (a 10-row GEMM
/// ran 8 + 8 rows; bench/gemm in docs/perf.md, session 25).
void smallTileOfRows(const GemmParams &g, const Tile &t, int64_t nv, const float *a) {
  using Fn = void (*)(const GemmParams &, const Tile &, int64_t, const float *);
  static constexpr Fn byRows[] = {nullptr,       smallTile<1>, smallTile<2>, smallTile<3>,
                                  smallTile<4>,  smallTile<5>, smallTile<6>, smallTile<7>,
                                  smallTile<MR>, smallTile<9>};
  static_assert(MR == 8, "byRows[8] is the full strip");
  byRows[t.rows](g, t, nv, a);
}

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
    if (nv == NV && t.rows == 9)
      fullTile<9>(g, t, strip);
    else if (nv == NV && t.rows == MR && fullTileAsm)
      fullTile<MR>(g, t, strip);
    else
      smallTileOfRows(g, t, nv, strip);
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
