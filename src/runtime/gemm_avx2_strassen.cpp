// A fast GEMM scheme's products on the AVX2 tile (gemm.h, gemmAvx2Strassen; the schemes and
// their operands are in gemm_strassen.cpp).
//
// A work item is (a group of 6-row strips, a few 16-column panels) of the part-size products,
// and runs all the products there, one after another over the item's panels: each product's
// tiles add themselves into the item's blocks of C (four for Strassen, six for the rank-15
// scheme), and after the last one C is written from the blocks with the bias, residual and
// activation, so C is written once.
// Strassen's products run one after another over all of C instead read and wrote C's quarters
// 12 times per call, which took back most of what the eighth product saves (128 x 3072 x 768 on
// Zen 3: level with the plain GEMM).
#include "gemm_avx2_tile.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

namespace kiln::rt {
namespace {

// Panels per work item: each product's A strips are re-read from L2 for every panel of the
// item, and the item's blocks of C (up to 54 KiB a panel) stay in L2 across the products.
// 128 x 3072 x 768 on Zen 3 (bench/gemm, B from memory, best of 20, Strassen's): 96.8 GFLOP/s at
// 1 panel, 99.7 at 2, 101.6 at 4, 100.7 at 8; with rank 15, 3 to 8 level in BERT-base. Where
// the rows take several groups kManyGroupsItemPanels, and at one thread kWideItemPanels
// (below).
constexpr int64_t kItemPanels = 4;

// Strips per group (work item) at most. B's combinations are read from memory once per group,
// so where all of the half GEMM's rows fit kOneGroupStrips one group takes them: ViT-B/16's
// 197 rows (17 strips) ran 1.06x faster at fc2 and 1.01-1.03x at fc1 and Q/K/V at 2 threads on
// Zen 3, against groups of 12 (bench/gemm, B from memory). Past that, groups of as many strips
// and 8 panels an item: on Zen 2, M = 512, 1024 and 2048 (BERT-base b8's 1024) ran fc1, fc2 and
// Q/K/V 1.02-1.03x faster at 1 and 2 threads than groups of 12 strips with 4 panels (24 and 4:
// 1.01x; 12 and 8: 1.01x; bench/gemm, B from memory, A rewritten; docs/perf.md, session 45).
// (On Zen 3, with fc2's K in blocks of 512, b8's fc2 had run 0.97-0.98x at 24 strips and 4
// panels, session 40.)
constexpr int64_t kOneGroupStrips = 24;
constexpr int64_t kManyGroupsItemPanels = 8;

// At one thread (no items to share out), 16 panels an item where one product's A rows of the
// group take at most kWideItemABytes: each product's A is then brought from L3 once per 16
// panels, and its blocks of C (up to 400 KiB for rank 15) still fit a 512 KiB L2 beside it. On
// Zen 2 (bench/gemm, B from memory, A rewritten) fc1 and Q/K/V at 128 and 197 rows ran 1.02x
// faster than with 4, the attention output (Strassen's) 1.015x; fc2, whose A rows take 256
// KiB, ran 0.99x, so it keeps 4 (docs/perf.md, session 45). At 2 threads 16 panels left too
// few items to share evenly (fc2 at 128 rows 0.53x, Q/K/V 0.78x) and 8 was within 1% of 4.
constexpr int64_t kWideItemPanels = 16;
constexpr int64_t kWideItemABytes = 128 * 1024;

/// What C's rows get after the sum of the blocks: the activation (Post; Clamp with bounds or
/// none) and a residual or not, fixed per call so the row loop has no branch per vector.
enum class Finish { None, Clamp, GeluErf, GeluTanh };

/// `rows` rows of 16 columns of C at `c` from one of its blocks (alpha already applied):
/// post(block + beta * bias + residual), the residual rows ldr apart (C's own contents for an
/// in-place one).
template <Finish F, bool Residual>
void finishRows(const GemmParams &g, const float *block, int rows, float *c, const float *bias,
                const float *residual, int64_t ldr) {
  const __m256 beta = _mm256_set1_ps(g.beta);
  const __m256 b0 = bias ? _mm256_mul_ps(beta, _mm256_loadu_ps(bias)) : _mm256_setzero_ps();
  const __m256 b1 = bias ? _mm256_mul_ps(beta, _mm256_loadu_ps(bias + 8)) : _mm256_setzero_ps();
  const __m256 lo = _mm256_set1_ps(g.lo), hi = _mm256_set1_ps(g.hi);
  for (int i = 0; i < rows; ++i) {
    float *out = c + i * g.ldc;
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_add_ps(_mm256_load_ps(block + i * NR + 8 * h), h == 0 ? b0 : b1);
      if constexpr (Residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + i * ldr + 8 * h));
      if constexpr (F == Finish::GeluErf) v = geluErf256(v);
      if constexpr (F == Finish::GeluTanh) v = geluTanh256(v);
      // NaN is the second operand of max and min, so it passes through.
      if constexpr (F == Finish::Clamp) v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
      _mm256_storeu_ps(out + 8 * h, v);
    }
  }
}

using FinishRows = void (*)(const GemmParams &, const float *, int, float *, const float *,
                            const float *, int64_t);

template <bool Residual> FinishRows finishOf(const GemmParams &g) {
  switch (g.post) {
  case GemmPost::GeluErf:
    return finishRows<Finish::GeluErf, Residual>;
  case GemmPost::GeluTanh:
    return finishRows<Finish::GeluTanh, Residual>;
  case GemmPost::Clamp:
    break;
  }
  return clampBounds(g) ? finishRows<Finish::Clamp, Residual> : finishRows<Finish::None, Residual>;
}

/// Item `item`: a group of strips over a block of panels, every product on each, then C.
void runItem(const GemmParams &g, const StrassenProducts &sp, const Plan &plan, int64_t perItem,
             float *cBlocks, float *c, int64_t item) {
  const int64_t blocks = (plan.panels + perItem - 1) / perItem;
  const int64_t grp = item / blocks, p0 = item % blocks * perItem;
  const int64_t p1 = std::min(plan.panels, p0 + perItem);
  int64_t s0, s1;
  groupStrips(plan, grp, s0, s1);
  const int64_t kc = plan.kc;
  // C block q's tile for panel p (of this item) and strip s (of this group).
  auto block = [&](int q, int64_t p, int64_t s) {
    return cBlocks + ((q * perItem + (p - p0)) * plan.perGroup + (s - s0)) * MR * NR;
  };
  alignas(64) float partial[kOneGroupStrips * MR * NR];
  GemmParams pg = g;
  pg.m = sp.h;
  pg.n = sp.np;
  pg.k = sp.kp;
  Tile t;
  t.cols = NR;
  t.ldc = NR;
  t.r = nullptr;
  t.bias = nullptr;
  for (int j = 0; j < sp.products; ++j) {
    TileDest dest[kMaxFastDests];
    t.destCount = sp.count[j];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t pc = 0; pc < sp.kp; pc += kc) {
        t.kc = std::min(kc, sp.kp - pc);
        t.b = sp.b[j] + (p * sp.kp + pc) * NR;
        t.loadC = pc > 0;
        t.last = pc + t.kc >= sp.kp;
        // The next block of B: this product's next K block or panel (one stream), or after
        // the item's last panel the next product's first.
        const float *next = t.last && p == p1 - 1
                                ? (j + 1 < sp.products ? sp.b[j + 1] + p0 * sp.kp * NR : nullptr)
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
            dest[d] = TileDest{block(sp.cBlock[j][d], p, s), sp.add[j][d], sp.negate[j][d]};
          t.dest = t.last ? dest : nullptr;
          Rows rows;
          for (int i = 0; i < t.rows; ++i)
            rows.row[i] = sp.a[j] + (row0 + i) * sp.lda[j] + pc;
          tileOfRows(pg, t, rows);
        }
      }
  }
  // C from the item's blocks, with the epilogue. Written by each block's last product from its
  // tiles' registers instead (Strassen's), 128 x 3072 x 768 ran about 4% slower on Zen 3
  // (bench/gemm, B from memory; docs/perf.md, session 39): the stores into C's lines, which
  // are in no cache, held up the next tile.
  // An in-place residual is C's own contents: the residual's rows are then C's.
  const float *residual = g.residual;
  const int64_t ldr = g.residual == c ? g.ldc : g.ldr;
  const FinishRows finish = residual ? finishOf<true>(g) : finishOf<false>(g);
  for (int64_t s = s0; s < s1; ++s) {
    int64_t row0;
    int rows;
    stripSpan(plan, sp.h, s, row0, rows);
    for (int q = 0; q < sp.blocks(); ++q) {
      const int64_t r = sp.blockRow(q, row0);
      const int n = sp.blockRows(q, row0, rows);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t col = sp.blockCol(q) + p * NR;
        finish(g, block(q, p, s), n, c + r * g.ldc + col, g.bias ? g.bias + col : nullptr,
               residual ? residual + r * ldr + col : nullptr, ldr);
      }
    }
  }
}

/// Group grp's rows of A's formed operands, formed once: by the first thread to reach one of
/// its items, while any other that reaches one waits. With the items' static split each
/// thread then mostly forms the rows it reads, just before reading them.
void formGroupOnce(const StrassenProducts &sp, const Plan &plan, std::atomic<int> &state,
                   int64_t grp) {
  enum { kIdle, kForming, kFormed };
  if (state.load(std::memory_order_acquire) == kFormed) return;
  int idle = kIdle;
  if (state.compare_exchange_strong(idle, kForming, std::memory_order_acq_rel)) {
    int64_t s0, s1, r0, last;
    groupStrips(plan, grp, s0, s1);
    int rows;
    stripSpan(plan, sp.h, s0, r0, rows);
    stripSpan(plan, sp.h, s1 - 1, last, rows);
    sp.formRows(sp.formContext, r0, last + rows, 1);
    state.store(kFormed, std::memory_order_release);
    return;
  }
  // A group takes tens of microseconds to form; past that, the former has likely lost its
  // core (more threads than cores), so give it back instead of spinning through its slice.
  for (int spins = 0; state.load(std::memory_order_acquire) != kFormed; ++spins)
    if (spins < 4096)
      _mm_pause();
    else
      std::this_thread::yield();
}

/// out = the sum of N term rows times their signs, kp floats, the terms unrolled (a loop over
/// them per vector, with a branch on each sign, took 2.5% of BERT-base's GEMM time on Zen 3).
template <int N> void sumTermRows(const FastTerm *terms, int64_t kp, float *out) {
  const float *row[N];
  __m256 sign[N];
  for (int t = 0; t < N; ++t) {
    row[t] = terms[t].row;
    sign[t] = _mm256_set1_ps(terms[t].sign);
  }
  int64_t q = 0;
  for (; q + 8 <= kp; q += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(row[0] + q), sign[0]);
    for (int t = 1; t < N; ++t) // v + sign * x: the sum or difference, rounded once
      v = _mm256_fmadd_ps(_mm256_loadu_ps(row[t] + q), sign[t], v);
    _mm256_storeu_ps(out + q, v);
  }
  for (; q < kp; ++q) {
    float v = terms[0].sign * row[0][q];
    for (int t = 1; t < N; ++t)
      v += terms[t].sign * row[t][q];
    out[q] = v;
  }
}

} // namespace

void fastASumRowAvx2(const FastTerm *terms, int count, int64_t kp, float *out) {
  FastTerm present[kMaxFastTerms]; // an odd M's missing row adds nothing
  int n = 0;
  for (int t = 0; t < count; ++t)
    if (terms[t].row) present[n++] = terms[t];
  switch (n) {
  case 0:
    return static_cast<void>(std::fill(out, out + kp, 0.f));
  case 1:
    return sumTermRows<1>(present, kp, out);
  case 2:
    return sumTermRows<2>(present, kp, out);
  case 3:
    return sumTermRows<3>(present, kp, out);
  default:
    return sumTermRows<4>(present, kp, out);
  }
}

void gemmAvx2Strassen(const GemmParams &g, const StrassenProducts &sp, float *c) {
  if (sp.h <= 0 || sp.np <= 0 || sp.kp <= 0) return;
  Plan plan;
  plan.panels = sp.np / NR;
  const GemmRowGroups rows = gemmRowGroups(sp.h, MR, kOneGroupStrips, plan.panels);
  plan.strips = rows.strips;
  plan.perGroup = rows.perGroup;
  plan.groups = rows.groups;
  // A product's K (fc2's 1024 with rank 15, 1536 with Strassen's) in one block up to
  // kProductWholeK, past it in even blocks, not in the plain GEMM's blocks of kBlockK: on Zen 3
  // blocks of at most 768 ran fc2 1.01-1.04x faster than blocks of 256 (session 40); on Zen 2
  // one block of 1024 / 1536 ran it 1.01-1.03x faster again at 128, 197 and 1024 rows, 1 and
  // 2 threads, both schemes (bench/gemm, B from memory), and ViT-B/16 at 2 threads 1.4%, GPT-2
  // at 1 thread 0.6% (docs/perf.md, session 45). The C blocks are then summed once per product,
  // not once per K block.
  const int64_t kBlocks = (sp.kp + kProductWholeK - 1) / kProductWholeK;
  plan.kc = (sp.kp + kBlocks - 1) / kBlocks;
  planStrips(plan, sp.h, true);
  plan.residual = nullptr;
  plan.inPlace = false;
  plan.lean = false;
  const bool wide =
      rows.threads == 1 && plan.perGroup * MR * sp.kp * int64_t{sizeof(float)} <= kWideItemABytes;
  const int64_t itemPanels = wide                            ? kWideItemPanels
                             : plan.strips > kOneGroupStrips ? kManyGroupsItemPanels
                                                             : kItemPanels;
  const int64_t perItem = std::max<int64_t>(1, std::min(itemPanels, plan.panels));
  // Each thread's blocks of C: its blocks x the item's panels x a strip group's tiles.
  const int64_t slotFloats = (sp.blocks() * perItem * plan.perGroup * MR * NR + 15) / 16 * 16;
  float *scratch = gemmThreadScratch(rows.threads, slotFloats);
  const int64_t groupItems = (plan.panels + perItem - 1) / perItem,
                items = plan.groups * groupItems;
  // A's formed operands: where several strip groups take the rows (BERT-base b8's 1024), each
  // group's rows as its first item starts, else all of them first, on the call's threads. On
  // Zen 2, BERT-base b8 ran 1.00-1.02x / 1.01-1.03x faster at 1 / 2 threads (4 alternating
  // pairs) than with every row formed first, when the operands (23 MB for fc2) had left the
  // caches before their group read them; with all rows formed at no cost (a wrong-result
  // ablation) it ran 1.03x / 1.05x faster (docs/perf.md, session 47).
  const bool perGroup = sp.formRows && plan.groups > 1;
  std::unique_ptr<std::atomic<int>[]> formed;
  if (perGroup)
    formed.reset(new std::atomic<int>[static_cast<size_t>(plan.groups)]());
  else if (sp.formRows)
    sp.formRows(sp.formContext, 0, sp.h, rows.threads);
  gemmForEachItem(items, rows.threads, [&](int64_t item) {
    if (perGroup) formGroupOnce(sp, plan, formed[item / groupItems], item / groupItems);
    runItem(g, sp, plan, perItem, scratch + gemmItemSlot(rows.threads) * slotFloats, c, item);
  });
}

} // namespace kiln::rt
