// kiln's AVX2 GEMM (gemm.h; compiled with -mavx2 -mfma).
//
// The register tile and the blocking's constants are in gemm_avx2_tile.h.
//
// Blocking: a work item is (a group of 6-row strips, one 16-column panel); it walks K in
// blocks, and under each block every strip of the group; the item's C (rows x 16) stays in
// L1/L2 between the blocks. K up to kWholeK is one block: the panel (up to 48 KiB) then
// streams from L2 for each strip, with fewer C reloads and tile restarts than blocks of 256
// kept in L1. Deeper K goes in blocks of kBlockK (16 KiB of a panel, kept in L1 while the
// strips pass). While the strips run, each prefetches a share of the next block of B into L2
// (the panels are one contiguous stream, so the next block is the next kc x 16 floats),
// spread over the k-steps of a block longer than kBlockK. Both together: 128-197 x 768-3072 x 768
// 1-3% faster on Zen 3 with B from memory (the two drivers alternating in one process;
// docs/perf.md, session 35). Items are split among the run's threads; inside a parallel region (a
// conv chain's lanes) the calling thread runs them all.
//
// Where A's rows lie a multiple of 4 KiB apart (K = 1024, 2048, 3072: BERT's fc2), a tile's
// six rows share one L1 set. A padded A was under 2% faster in the GEMM alone (Zen 3 and the
// H200 host's Xeon, quiet) and copying it into one cost 1-3% (session 35): padding would have
// to come from the compiler's layout of A, for free.
//
// Two other tiles take part of some calls (session 36): the lean tile of gemm_avx2_lean.cpp
// runs the whole strips and panels of plain GEMMs of K up to 256 (1x1 convs), where this
// tile's per-tile work was a large share of each tile, and the 4 x 24 tile of
// gemm_avx2_tail.cpp the last 24 columns of an N 8 past a whole panel.
#include "gemm_avx2_tile.h"

#include <omp.h>

namespace kiln::rt {
namespace {

/// Item `item` of the plan: its panel's K blocks, under each its group's strips.
void runItem(const GemmParams &g, const Plan &plan, const float *a, const float *packedB, float *c,
             int64_t item) {
  const int64_t grp = item / plan.panels, p = item % plan.panels;
  int64_t s0, s1;
  groupStrips(plan, grp, s0, s1);
  const int64_t col0 = p * NR, kc = plan.kc;
  // A plain GEMM of K <= 256 (a bias, a residual beside C and a clamp at most): whole strips
  // and a whole panel on the lean tile (gemm_avx2_lean.cpp); the rest (a partial panel, the
  // last strips when they share rows) below.
  const int64_t fullStrips = std::min(s1, plan.fullStrips);
  int64_t sFirst = s0;
  if (plan.lean && g.n - col0 >= NR && fullStrips > s0) {
    gemmAvx2LeanStrips(g, a, packedB + p * g.k * NR, c, s0 * MR, fullStrips * MR, col0);
    if (fullStrips == s1) return;
    sFirst = fullStrips;
  }
  Tile t;
  t.cols = static_cast<int>(std::min(NR, g.n - col0));
  t.ldc = g.ldc;
  t.dest = nullptr;
  t.destCount = 0;
  for (int64_t pc = 0; pc < g.k; pc += kc) {
    t.kc = std::min(kc, g.k - pc);
    t.b = packedB + (p * g.k + pc) * NR;
    t.loadC = pc > 0 || plan.inPlace;
    t.last = pc + t.kc >= g.k;
    t.bias = t.last && g.bias ? g.bias + col0 : nullptr;
    const float *next = t.b + t.kc * NR;
    for (int64_t s = sFirst; s < s1; ++s) {
      sharePrefetch(t, next, kc, s - s0, s1 - s0);
      int64_t row0;
      stripSpan(plan, g.m, s, row0, t.rows);
      t.c = cPanelRow(g, c, row0, col0);
      t.r = t.last && plan.residual ? plan.residual + row0 * g.ldr + col0 : nullptr;
      Rows rows;
      for (int i = 0; i < t.rows; ++i)
        rows.row[i] = a + (row0 + i) * g.lda + pc;
      tileOfRows(g, t, rows);
    }
  }
}

} // namespace

void gemmAvx2(const GemmParams &g, const float *a, const float *packedB, float *c) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) return;
  // N 8 past a whole panel: the last 24 columns on the 4 x 24 tile (gemm_avx2_tail.cpp), in
  // items of 12 of its strips after the 6 x 16 tiles' items.
  const bool tail = g.n % NR == 8 && g.n >= 24 && !g.cBlockStride;
  GemmParams head = g;
  if (tail) head.n = g.n - 24;
  Plan plan;
  plan.panels = (head.n + NR - 1) / NR;
  const GemmRowGroups rows = gemmRowGroups(g.m, MR, kGroupStrips, plan.panels + (tail ? 2 : 0));
  plan.strips = rows.strips;
  plan.perGroup = rows.perGroup;
  plan.groups = rows.groups;
  plan.kc = g.k <= kWholeK ? g.k : kBlockK;
  // An in-place residual is already in C: the first block adds to it (alpha is 1 then, which
  // the shim checks), and the epilogue does not add it again.
  plan.inPlace = g.residual == c;
  plan.residual = plan.inPlace ? nullptr : g.residual;
  plan.lean = gemmAvx2LeanFits(g, c);
  planStrips(plan, g.m, !plan.lean);
  const int64_t headItems = plan.groups * plan.panels, tailRows = 12 * kGemmTailRows;
  const int64_t tailItems = tail ? (g.m + tailRows - 1) / tailRows : 0;
  gemmForEachItem(headItems + tailItems, rows.threads, [&](int64_t item) {
    if (item < headItems) return runItem(head, plan, a, packedB, c, item);
    const int64_t row0 = (item - headItems) * tailRows;
    gemmAvx2Tail24(g, a, packedB, c, row0, std::min(g.m, row0 + tailRows));
  });
}

} // namespace kiln::rt
