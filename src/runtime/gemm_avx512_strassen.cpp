// A fast GEMM scheme's products on the AVX-512 tiles (gemm.h, gemmAvx512Strassen; the schemes
// and their operands are in gemm_strassen.cpp), the same way as the AVX2 driver
// (gemm_avx2_strassen.cpp): a work item is (a group of strips, a few groups of three panels)
// of the part-size products and runs all of them there, each product's tile sums added into the
// item's blocks of C (kept in L2), and after the last product C written from the blocks with
// the epilogue, so C is written once. The tiles are the plain GEMM's (gemm_avx512_kernels.h),
// summing into a block of their own that is then spread to C's blocks.
#include "gemm_avx512_kernels.h"

#include <omp.h>

#include <cstdint>
#include <limits>

namespace kiln::rt {
namespace {

// Strips per work item at most (72 rows), but where all of the half GEMM's strips fit
// kOneGroupStrips one group takes them, so B's combinations are read from memory once (as the
// AVX2 driver does): on the H200 host's Xeon ViT's 197 rows ran 0.85-0.89x -> 0.89-0.93x the
// plain AVX-512 GEMM (bench/gemm, 1 and 2 threads; still below it, so the route stays off by
// default with AVX-512; docs/perf.md, session 40).
constexpr int64_t kStrips = 8;
constexpr int64_t kOneGroupStrips = 16;
constexpr int64_t kItemGroups = 2;           // panel groups per work item (96 columns)
constexpr int64_t kTileFloats = 9 * NV * NR; // one tile's block: 9 rows x 48 floats
constexpr int64_t kTileStride = NV * NR;     // its row stride

/// alpha * a tile's sums (rows x nv panels) written into or added to a block of C,
/// negated or not.
void spread(const float *sums, float *block, int rows, int64_t nv, bool add, bool negate,
            __m512 alpha) {
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < nv; ++j) {
      const int64_t at = i * kTileStride + j * NR;
      __m512 v = _mm512_mul_ps(alpha, _mm512_load_ps(sums + at));
      if (negate) v = _mm512_sub_ps(_mm512_setzero_ps(), v);
      if (add) v = _mm512_add_ps(_mm512_load_ps(block + at), v);
      _mm512_store_ps(block + at, v);
    }
}

/// What C's rows get after the sum of the blocks: the activation (Post; Clamp with bounds or
/// none), fixed per call so the row loop has no branch per vector (as the AVX2 driver's).
enum class Finish { None, Clamp, GeluErf, GeluTanh };

/// `rows` rows and nv panels of C at `c` from one of its blocks (alpha already applied):
/// post(block + beta * bias + residual), the residual rows ldr apart (C's own contents for an
/// in-place one).
template <Finish F, bool Residual>
void finishC(const GemmParams &g, const float *block, int rows, int64_t nv, float *c,
             const float *bias, const float *residual, int64_t ldr) {
  __m512 b[NV];
  for (int64_t j = 0; j < nv; ++j)
    b[j] = bias ? _mm512_mul_ps(_mm512_set1_ps(g.beta), _mm512_loadu_ps(bias + j * NR))
                : _mm512_setzero_ps();
  const __m512 lo = _mm512_set1_ps(g.lo), hi = _mm512_set1_ps(g.hi);
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < nv; ++j) {
      __m512 v = _mm512_add_ps(_mm512_load_ps(block + i * kTileStride + j * NR), b[j]);
      if constexpr (Residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + i * ldr + j * NR));
      if constexpr (F == Finish::GeluErf) v = geluErf512(v);
      if constexpr (F == Finish::GeluTanh) v = geluTanh512(v);
      // NaN is the second operand of max and min, so it passes through.
      if constexpr (F == Finish::Clamp) v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
      _mm512_storeu_ps(c + i * g.ldc + j * NR, v);
    }
}

using FinishC = void (*)(const GemmParams &, const float *, int, int64_t, float *, const float *,
                         const float *, int64_t);

template <bool Residual> FinishC finishOf(const GemmParams &g) {
  switch (g.post) {
  case GemmPost::GeluErf:
    return finishC<Finish::GeluErf, Residual>;
  case GemmPost::GeluTanh:
    return finishC<Finish::GeluTanh, Residual>;
  case GemmPost::Clamp:
    break;
  }
  return clampBounds(g) ? finishC<Finish::Clamp, Residual> : finishC<Finish::None, Residual>;
}

struct Work {
  const GemmParams &g;
  const StrassenProducts &sp;
  const Plan &plan;
  int64_t kc, blocks; // K per block; work items per strip group
  float *c;
};

/// Where the tile for (product j, panel group pg, K block pc) prefetches the block after it
/// (the same group's next K block, the next group's first, the next product's first group at
/// pg0), as the plain driver does: the lines shared among the strips, at one per two k-steps.
void setPrefetch(const Work &w, Tile &t, int j, int64_t pg, int64_t pg0, int64_t pg1, int64_t pc,
                 int64_t s, int64_t s0, int64_t s1) {
  const StrassenProducts &sp = w.sp;
  const float *next = nullptr;
  int64_t nextPg = pg, nextPc = pc + w.kc;
  int nextJ = j;
  if (nextPc >= sp.kp) {
    nextPc = 0;
    if (++nextPg >= pg1) {
      nextPg = pg0;
      ++nextJ;
    }
  }
  t.prefetchLines = 0;
  if (nextJ >= sp.products) return;
  const int64_t nextKc = std::min(w.kc, sp.kp - nextPc);
  const int64_t nextPanels = std::min<int64_t>(NV, w.plan.panels - nextPg * NV);
  next = sp.b[nextJ] + (nextPg * NV * sp.kp + nextPc) * NR;
  const int64_t lines = nextKc * nextPanels;
  const int64_t evenShare = (lines + (s1 - s0) - 1) / (s1 - s0);
  const int64_t atHalfRate = std::min(lines, std::max<int64_t>(1, t.kc / 2));
  const int64_t share = std::min(t.kc, std::max(evenShare, atHalfRate));
  t.prefetchEvery = std::max<int64_t>(1, t.kc / std::max<int64_t>(1, share));
  t.nextRunLines = nextKc;
  const int64_t from = (s - s0) * share;
  t.prefetchLines = std::clamp<int64_t>(lines - from, 0, share);
  if (t.prefetchLines == 0) return;
  const int64_t panel = from / nextKc, off = from % nextKc;
  t.prefetch = next + panel * t.panelStride + off * NR;
  t.prefetchRun = nextKc - off;
}

void runItem(const Work &w, float *cBlocks, int64_t item) {
  const StrassenProducts &sp = w.sp;
  const Plan &plan = w.plan;
  const int64_t grp = item / w.blocks, pg0 = item % w.blocks * kItemGroups;
  const int64_t pg1 = std::min(plan.panelGroups, pg0 + kItemGroups);
  const int64_t s0 = plan.groupBegin(grp), s1 = plan.groupEnd(grp);
  float *partial = cBlocks + sp.blocks() * kItemGroups * plan.perGroup * kTileFloats;
  auto block = [&](int q, int64_t pg, int64_t s) {
    return cBlocks + ((q * kItemGroups + (pg - pg0)) * plan.perGroup + (s - s0)) * kTileFloats;
  };
  const __m512 alpha = _mm512_set1_ps(w.g.alpha);
  GemmParams pp = w.g; // the tiles' sums: no epilogue, into blocks of their own
  pp.m = sp.h;
  pp.n = sp.np;
  pp.k = sp.kp;
  pp.ldc = kTileStride;
  pp.alpha = pp.beta = 1.f;
  pp.bias = pp.residual = nullptr;
  pp.post = GemmPost::Clamp;
  pp.lo = -std::numeric_limits<float>::infinity();
  pp.hi = std::numeric_limits<float>::infinity();
  Tile t;
  t.panelStride = sp.kp * NR;
  t.r = nullptr;
  t.bias = nullptr;
  t.prefetch = nullptr;
  t.prefetchRun = 0;
  for (int j = 0; j < sp.products; ++j) {
    pp.lda = sp.lda[j];
    for (int64_t pg = pg0; pg < pg1; ++pg) {
      const int64_t nv = std::min<int64_t>(NV, plan.panels - pg * NV);
      t.cols = static_cast<int>(nv * NR);
      for (int64_t pc = 0; pc < sp.kp; pc += w.kc) {
        t.kc = std::min(w.kc, sp.kp - pc);
        t.b = sp.b[j] + (pg * NV * sp.kp + pc) * NR;
        t.loadC = pc > 0;
        t.last = pc + t.kc >= sp.kp;
        for (int64_t s = s0; s < s1; ++s) {
          setPrefetch(w, t, j, pg, pg0, pg1, pc, s, s0, s1);
          const int64_t row0 = plan.row0(s);
          t.rows = static_cast<int>(plan.rows(s, sp.h));
          t.c = partial + (s - s0) * kTileFloats;
          const float *strip = sp.a[j] + row0 * sp.lda[j] + pc;
          stripTile(pp, t, nv, strip);
          if (!t.last) continue;
          for (int d = 0; d < sp.count[j]; ++d)
            spread(t.c, block(sp.cBlock[j][d], pg, s), t.rows, nv, sp.add[j][d], sp.negate[j][d],
                   alpha);
        }
      }
    }
  }
  // C from the item's blocks, with the epilogue, after the last product: the AVX2 driver's
  // measurement (gemm_avx2_strassen.cpp) showed C's stores from each block's last
  // product, into lines in no cache, holding up the next tile.
  // An in-place residual is C's own contents: the residual's rows are then C's.
  const float *residual = w.g.residual;
  const int64_t ldr = residual == w.c ? w.g.ldc : w.g.ldr;
  const FinishC finish = residual ? finishOf<true>(w.g) : finishOf<false>(w.g);
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t row0 = plan.row0(s);
    const int64_t tileRows = plan.rows(s, sp.h);
    for (int q = 0; q < sp.blocks(); ++q) {
      const int64_t r = sp.blockRow(q, row0);
      const int rows = sp.blockRows(q, row0, tileRows);
      for (int64_t pg = pg0; pg < pg1; ++pg) {
        const int64_t nv = std::min<int64_t>(NV, plan.panels - pg * NV);
        const int64_t col = sp.blockCol(q) + pg * NV * NR;
        finish(w.g, block(q, pg, s), rows, nv, w.c + r * w.g.ldc + col,
               w.g.bias ? w.g.bias + col : nullptr, residual ? residual + r * ldr + col : nullptr,
               ldr);
      }
    }
  }
}

} // namespace

void gemmAvx512Strassen(const GemmParams &g, const StrassenProducts &sp, float *c) {
  if (sp.h <= 0 || sp.np <= 0 || sp.kp <= 0) return;
  GemmParams half = g;
  half.m = sp.h;
  half.n = sp.np;
  half.k = sp.kp;
  half.residual = nullptr;
  int threads = 1;
  Plan plan = makePlan(half, nullptr, threads); // strips of 9 and 8 rows, panel groups
  const int64_t blocks = (plan.panelGroups + kItemGroups - 1) / kItemGroups;
  const int64_t maxStrips = plan.strips <= kOneGroupStrips ? kOneGroupStrips : kStrips;
  const GemmRowGroups rows = gemmRowGroups(plan.strips, 1, maxStrips, blocks);
  plan.perGroup = rows.perGroup;
  plan.groups = rows.groups;
  Work w{g, sp, plan, blockDepth(sp.kp), blocks, c};
  // Each thread's blocks: an item's blocks of C, then its tiles' sums.
  const int64_t slotFloats = (sp.blocks() * kItemGroups + 1) * plan.perGroup * kTileFloats;
  float *scratch = gemmThreadScratch(rows.threads, slotFloats);
  gemmForEachItem(plan.groups * blocks, rows.threads, [&](int64_t item) {
    runItem(w, scratch + gemmItemSlot(rows.threads) * slotFloats, item);
  });
}

} // namespace kiln::rt
