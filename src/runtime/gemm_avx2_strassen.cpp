// Strassen's seven products on the AVX2 tile (gemm.h, gemmAvx2Strassen; the algorithm and its
// operands are in gemm_strassen.cpp).
//
// A work item is (a group of 6-row strips, a few 16-column panels) of the half-size products,
// and runs all seven products there, one after another over the item's panels: each
// product's tiles add themselves into the item's four quarter blocks, and after the last one
// C is written from the blocks with the bias, residual and activation, so C is written once.
// Products run one after another over all of C instead read and wrote C's quarters 12 times per
// call, which took back most of what the eighth product saves (128 x 3072 x 768 on Zen 3: level
// with the plain GEMM).
#include "gemm_avx2_tile.h"

#include <omp.h>

#include <cstdint>

namespace kiln::rt {
namespace {

// Panels per work item: each product's A strips are re-read from L2 for every panel of the
// item, and the item's quarter blocks (up to 36 KiB a panel) stay in L2 across the seven products.
// 128 x 3072 x 768 on Zen 3 (bench/gemm, B from memory, best of 20): 96.8 GFLOP/s at 1 panel,
// 99.7 at 2, 101.6 at 4, 100.7 at 8.
constexpr int64_t kItemPanels = 4;

// Strips per group (work item) at most. B's combinations are read from memory once per group,
// so where all of the half GEMM's rows fit kOneGroupStrips one group takes them: ViT-B/16's
// 197 rows (17 strips) ran 1.06x faster at fc2 and 1.01-1.03x at fc1 and Q/K/V at 2 threads on
// Zen 3, against groups of 12 (bench/gemm, B from memory). Past that, groups of kGroupStrips
// keep each product's A strips and the quarter blocks in L2: BERT-base b8's 1024 rows at 24
// strips a group ran its fc2 0.97-0.98x.
constexpr int64_t kOneGroupStrips = 24;

int64_t maxGroupStrips(int64_t h) {
  return (h + MR - 1) / MR <= kOneGroupStrips ? kOneGroupStrips : kGroupStrips;
}

/// `rows` rows of 16 columns of C at `c` from a quarter's block (alpha already applied):
/// post(block + beta * bias + residual (+ C's own contents for an in-place residual)).
void finishRows(const GemmParams &g, const float *block, int rows, float *c, const float *bias,
                const float *residual, bool inPlace) {
  const __m256 beta = _mm256_set1_ps(g.beta);
  const __m256 b0 = bias ? _mm256_mul_ps(beta, _mm256_loadu_ps(bias)) : _mm256_setzero_ps();
  const __m256 b1 = bias ? _mm256_mul_ps(beta, _mm256_loadu_ps(bias + 8)) : _mm256_setzero_ps();
  const bool bounds = clampBounds(g);
  const __m256 lo = _mm256_set1_ps(g.lo), hi = _mm256_set1_ps(g.hi);
  for (int i = 0; i < rows; ++i) {
    float *out = c + i * g.ldc;
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_add_ps(_mm256_load_ps(block + i * NR + 8 * h), h == 0 ? b0 : b1);
      if (inPlace) v = _mm256_add_ps(v, _mm256_loadu_ps(out + 8 * h));
      if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + i * g.ldr + 8 * h));
      if (g.post == GemmPost::GeluErf)
        v = geluErf256(v);
      else if (g.post == GemmPost::GeluTanh)
        v = geluTanh256(v);
      else if (bounds) // NaN is the second operand of max and min, so it passes through
        v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
      _mm256_storeu_ps(out + 8 * h, v);
    }
  }
}

/// Item `item`: a group of strips over a block of panels, every product on each, then C.
void runItem(const GemmParams &g, const StrassenProducts &sp, const Plan &plan, int64_t perItem,
             float *quarters, float *c, int64_t item) {
  const int64_t blocks = (plan.panels + perItem - 1) / perItem;
  const int64_t grp = item / blocks, p0 = item % blocks * perItem;
  const int64_t p1 = std::min(plan.panels, p0 + perItem);
  const int64_t s0 = grp * plan.perGroup, s1 = std::min(plan.strips, s0 + plan.perGroup);
  const int64_t kc = plan.kc;
  // Quarter q's block for panel p (of this item) and strip s (of this group).
  auto block = [&](int q, int64_t p, int64_t s) {
    return quarters + ((q * perItem + (p - p0)) * plan.perGroup + (s - s0)) * MR * NR;
  };
  alignas(64) float partial[kOneGroupStrips * MR * NR];
  GemmParams pg = g;
  pg.m = sp.h;
  pg.n = sp.n2;
  pg.k = sp.k2;
  Tile t;
  t.cols = NR;
  t.ldc = NR;
  t.r = nullptr;
  t.bias = nullptr;
  for (int j = 0; j < 7; ++j) {
    TileDest dest[2];
    t.destCount = sp.count[j];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t pc = 0; pc < sp.k2; pc += kc) {
        t.kc = std::min(kc, sp.k2 - pc);
        t.b = sp.b[j] + (p * sp.k2 + pc) * NR;
        t.loadC = pc > 0;
        t.last = pc + t.kc >= sp.k2;
        // The next block of B: this product's next K block or panel (one stream), or after
        // the item's last panel the next product's first.
        const float *next = t.last && p == p1 - 1
                                ? (j < 6 ? sp.b[j + 1] + p0 * sp.k2 * NR : nullptr)
                                : t.b + t.kc * NR;
        for (int64_t s = s0; s < s1; ++s) {
          if (next) {
            sharePrefetch(t, next, kc, s - s0, s1 - s0);
          } else {
            t.prefetchLines = 0;
            t.prefetchEvery = 1;
          }
          int64_t row0;
          stripSpan(plan, sp.h, s, row0, t.rows);
          t.c = partial + (s - s0) * MR * NR;
          for (int d = 0; d < t.destCount; ++d)
            dest[d] = TileDest{block(sp.quarter[j][d], p, s), sp.add[j][d], sp.negate[j][d]};
          t.dest = t.last ? dest : nullptr;
          Rows rows;
          for (int i = 0; i < t.rows; ++i)
            rows.row[i] = sp.a[j] + (row0 + i) * sp.lda[j] + pc;
          tileOfRows(pg, t, rows);
        }
      }
  }
  // C from the item's quarter blocks, with the epilogue. Written by each quarter's last
  // product from its tiles' registers instead, 128 x 3072 x 768 ran about 4% slower on Zen 3
  // (bench/gemm, B from memory; docs/perf.md, session 39): the stores into C's lines, which
  // are in no cache, held up the next tile.
  const bool inPlace = g.residual == c;
  for (int64_t s = s0; s < s1; ++s) {
    int64_t row0;
    int rows;
    stripSpan(plan, sp.h, s, row0, rows);
    for (int q = 0; q < 4; ++q) {
      // C's rows from the quarter's top; an odd M's bottom quarters end a row early.
      const int64_t r = (q < 2 ? 0 : sp.h) + row0;
      const int n =
          static_cast<int>(std::clamp<int64_t>((q < 2 ? sp.h : sp.bottom) - row0, 0, rows));
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t col = ((q & 1) ? sp.n2 : 0) + p * NR;
        finishRows(g, block(q, p, s), n, c + r * g.ldc + col, g.bias ? g.bias + col : nullptr,
                   g.residual && !inPlace ? g.residual + r * g.ldr + col : nullptr, inPlace);
      }
    }
  }
}

} // namespace

void strassenASumsRowAvx2(const float *top, const float *bottom, int64_t k2, float *t1, float *t2,
                          float *t5, float *t6, float *t7, float *a22) {
  const float *__restrict a11 = top, *__restrict a12 = top + k2;
  float *__restrict o1 = t1, *__restrict o2 = t2, *__restrict o5 = t5, *__restrict o6 = t6,
                    *__restrict o7 = t7;
  if (!bottom) { // the zero row under an odd M's bottom half
    for (int64_t q = 0; q < k2; ++q) {
      o1[q] = a11[q];
      o2[q] = 0.f;
      o5[q] = a11[q] + a12[q];
      o6[q] = -a11[q];
      o7[q] = a12[q];
    }
    if (a22) std::fill(a22, a22 + k2, 0.f);
    return;
  }
  // One pass over the row's four quarters, all five combinations at once.
  const float *__restrict a21 = bottom, *__restrict b22 = bottom + k2;
  for (int64_t q = 0; q < k2; ++q) {
    o1[q] = a11[q] + b22[q];
    o2[q] = a21[q] + b22[q];
    o5[q] = a11[q] + a12[q];
    o6[q] = a21[q] - a11[q];
    o7[q] = a12[q] - b22[q];
  }
  if (a22) std::copy(b22, b22 + k2, a22);
}

void gemmAvx2Strassen(const GemmParams &g, const StrassenProducts &sp, float *c) {
  if (sp.h <= 0 || sp.n2 <= 0 || sp.k2 <= 0) return;
  Plan plan;
  plan.panels = sp.n2 / NR;
  const GemmRowGroups rows = gemmRowGroups(sp.h, MR, maxGroupStrips(sp.h), plan.panels);
  plan.strips = rows.strips;
  plan.perGroup = rows.perGroup;
  plan.groups = rows.groups;
  // K / 2 past kWholeK in even blocks of at most kWholeK (fc2's 1536: two of 768), not in the
  // plain GEMM's blocks of kBlockK: on Zen 3 fc2 at 128, 197 and 1024 rows ran 1.01-1.04x at 1
  // and 2 threads (bench/gemm, B from memory), and BERT-base's fc2 took 71.5-72.0
  // against 73.0-73.6 ms a run at 1 thread (docs/perf.md, session 40).
  const int64_t kBlocks = (sp.k2 + kWholeK - 1) / kWholeK;
  plan.kc = (sp.k2 + kBlocks - 1) / kBlocks;
  plan.nextToLastRows = nextToLastStripRows(sp.h);
  plan.residual = nullptr;
  plan.inPlace = false;
  plan.lean = false;
  const int64_t perItem = std::max<int64_t>(1, std::min(kItemPanels, plan.panels));
  // Each thread's quarter blocks: 4 quarters x the item's panels x a strip group's tiles.
  const int64_t slotFloats = (4 * perItem * plan.perGroup * MR * NR + 15) / 16 * 16;
  float *scratch = gemmThreadScratch(rows.threads, slotFloats);
  const int64_t items = plan.groups * ((plan.panels + perItem - 1) / perItem);
  gemmForEachItem(items, rows.threads, [&](int64_t item) {
    runItem(g, sp, plan, perItem, scratch + gemmItemSlot(rows.threads) * slotFloats, c, item);
  });
}

} // namespace kiln::rt
