// How kiln's AVX-512 GEMM (gemm_avx512.cpp, the only file including this) cuts a GEMM into
// work: the tile's sizes, strips of rows and their groups, K blocks, and the parallel plans
// (column groups, rows per thread, or K per thread). Kept apart from the kernels so that
// each file has one job; nothing here touches vector registers.
#pragma once

#include "gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace kiln::rt::avx512plan {

inline constexpr int MR = static_cast<int>(kGemmTileRowsAvx512); // 8
inline constexpr int NV = 3;                // panels per tile: 8 x 48 of C in 24 zmm accumulators
inline constexpr int64_t NR = kGemvPanel;   // 16: one zmm
inline constexpr int64_t kMaxBlockK = 768;  // K per block at most
inline constexpr int64_t kGroupStrips = 27; // strips per work item at most (216 rows)

inline int64_t envInt(const char *name, int64_t fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::atoll(v) : fallback;
}
inline const bool fullTileAsm = envInt("KILN_GEMM_ASM_TILE", 1) != 0;
inline const bool nineRows = envInt("KILN_GEMM_NINE", 1) != 0;
inline const bool splitKOn = envInt("KILN_GEMM_SPLIT_K", 1) != 0;
inline constexpr int64_t kMinSplitK = 512;             // K per thread at least, to split K
inline constexpr int64_t kSplitKMaxItemsPerThread = 8; // more items than this per thread balance

inline constexpr int kMaxRowGroups = 8;          // threads a GEMM's rows are split among at most
inline constexpr int64_t kMinRowSplitRows = 128; // rows a GEMM needs to be split by rows (rowSplit)

struct Plan {
  int64_t strips, nines, panels, panelGroups, perGroup, groups;
  // Strip groups of perGroup strips, or, where rowSplit cut M by rows, [bounds[g], bounds[g+1]).
  bool byBounds = false;
  int64_t bounds[kMaxRowGroups + 1];
  int64_t groupBegin(int64_t grp) const { return byBounds ? bounds[grp] : grp * perGroup; }
  int64_t groupEnd(int64_t grp) const {
    return byBounds ? bounds[grp + 1] : std::min(strips, (grp + 1) * perGroup);
  }
  const float *residual; // a residual beside C (an in-place one is already in C), or null
  bool inPlace;
  int64_t kStart, kEnd; // the K range summed (all of K, or one thread's share: gemmSplitK)
  int64_t row0(int64_t s) const { return s < nines ? 9 * s : 9 * nines + MR * (s - nines); }
  int64_t rows(int64_t s, int64_t m) const {
    return std::min<int64_t>(s < nines ? 9 : MR, m - row0(s));
  }
};

/// The K block for `depth` k-steps: as few blocks as kMaxBlockK allows, of even length.
inline int64_t blockDepth(int64_t depth) {
  const int64_t blocks = (depth + kMaxBlockK - 1) / kMaxBlockK;
  return (depth + blocks - 1) / blocks;
}

/// Whether K shared out among the threads balances their work better than the items do: a
/// few items of uneven size (ResNet-50's layer4 3x3 convs as 49 x 512 x 4608 GEMMs: 11 items
/// of 3 panels but the last of 2, so 18 panels against 14 at 2 threads), K deep enough that
/// each thread keeps whole blocks, and no thread left idle by more than 5%.
inline bool splitKPays(const GemmParams &g, const Plan &plan, int threads) {
  const int64_t items = plan.groups * plan.panelGroups;
  if (threads < 2 || !splitKOn || g.k < kMinSplitK * threads) return false;
  if (items >= kSplitKMaxItemsPerThread * threads) return false;
  // Work per thread under the static schedule (contiguous chunks, the first items % team
  // threads one item more), in rows x panels.
  const int team = static_cast<int>(std::min<int64_t>(items, threads));
  int64_t total = 0, worst = 0, item = 0;
  for (int th = 0; th < team; ++th) {
    const int64_t count = items / team + (th < items % team ? 1 : 0);
    int64_t work = 0;
    for (int64_t e = item + count; item < e; ++item) {
      const int64_t grp = item / plan.panelGroups, pg = item % plan.panelGroups;
      const int64_t s0 = plan.groupBegin(grp), s1 = plan.groupEnd(grp);
      const int64_t rows =
          std::min(g.m, plan.row0(s1 - 1) + plan.rows(s1 - 1, g.m)) - plan.row0(s0);
      work += rows * std::min<int64_t>(NV, plan.panels - pg * NV);
    }
    total += work;
    worst = std::max(worst, work);
  }
  return 100 * worst * threads > 105 * total;
}

/// How gemmAvx512 cuts this GEMM up: strips, groups, panels, the K range, the threads.
inline Plan makePlan(const GemmParams &g, const float *c, int &threads) {
  Plan plan;
  plan.panels = (g.n + NR - 1) / NR;
  plan.panelGroups = (plan.panels + NV - 1) / NV;
  // Strips of 9 rows, then of 8, where M splits that way (27 accumulators do more FMAs per
  // load than 24) and few panel groups are partial (their 9-row tiles run through the
  // intrinsics: 784 x 128 x 512, a third of them partial, 0.85x); else strips of 8, the last
  // one partial.
  const int64_t eights = (9 - g.m % 9) % 9;
  const bool fewPartial = plan.panels % NV == 0 || plan.panelGroups >= 8;
  plan.nines =
      nineRows && fullTileAsm && fewPartial && MR * eights <= g.m ? (g.m - MR * eights) / 9 : 0;
  const int64_t strips = plan.nines > 0 ? plan.nines + eights : (g.m + MR - 1) / MR;
  const GemmRowGroups rows = gemmRowGroups(strips, 1, kGroupStrips, plan.panelGroups);
  plan.strips = rows.strips;
  plan.perGroup = rows.perGroup;
  plan.groups = rows.groups;
  threads = rows.threads;
  // An in-place residual is already in C: the first block adds to it (alpha is 1 then, which
  // the shim checks), and the epilogue does not add it again.
  plan.inPlace = g.residual == c;
  plan.residual = plan.inPlace ? nullptr : g.residual;
  plan.kStart = 0;
  plan.kEnd = g.k;
  return plan;
}

/// The plan with M cut into one group of strips per thread, each running every column group
/// of its rows, where the plan has fewer strip groups than threads, M is at least 128 and the
/// cut leaves no thread 5% over its share of rows (else the plan as it is). Each thread then
/// reads only its rows of A and writes only its rows of C, the rows the row-parallel kernels
/// around the GEMM (LayerNorm, the next GEMM in a transformer) handle on that thread, where
/// column groups made every thread read all of A and leave half of C in the other core's
/// cache; it streams all of B instead, which with fewer rows per B byte cost more than it
/// saved (ResNet-50's 49-row GEMMs: the model 0.97x at 2 threads). Same-run A/Bs at 2 threads
/// (docs/perf.md, session 24): BERT-base 1.05-1.06x, GPT-2 1.02-1.05x, ViT-B/16 1.02-1.04x,
/// ResNet-50 and MobileNetV2 level.
inline Plan rowSplit(const Plan &plan, const GemmParams &g, int threads) {
  static const bool on = envInt("KILN_GEMM_ROW_SPLIT", 1) != 0;
  if (!on || threads < 2 || threads > kMaxRowGroups || plan.groups >= threads ||
      plan.strips < threads || g.m < kMinRowSplitRows)
    return plan;
  Plan split = plan;
  split.byBounds = true;
  split.groups = threads;
  split.bounds[0] = 0;
  split.bounds[threads] = plan.strips;
  for (int t = 1; t < threads; ++t) { // the strip boundary nearest to t / threads of the rows
    const int64_t target = g.m * t / threads;
    const int64_t last = plan.strips - (threads - t); // leaves a strip for each later group
    int64_t s = split.bounds[t - 1] + 1;
    while (s < last && plan.row0(s + 1) <= target)
      ++s;
    if (s < last && target - plan.row0(s) > plan.row0(s + 1) - target) ++s;
    split.bounds[t] = s;
  }
  for (int t = 0; t < threads; ++t) {
    const int64_t rows =
        (t + 1 < threads ? plan.row0(split.bounds[t + 1]) : g.m) - plan.row0(split.bounds[t]);
    if (split.bounds[t + 1] <= split.bounds[t] || 100 * rows * threads > 105 * g.m) return plan;
  }
  return split;
}

/// What gemmAvx512 runs: K shared out among the threads where splitKPays, else the column
/// plan, or rows per thread where rowSplit takes it.
struct Choice {
  Plan plan;
  int threads = 1;
  bool splitK = false;
};
inline Choice choosePlan(const GemmParams &g, const float *c) {
  Choice ch;
  ch.plan = makePlan(g, c, ch.threads);
  ch.splitK = splitKPays(g, ch.plan, ch.threads);
  if (!ch.splitK) ch.plan = rowSplit(ch.plan, g, ch.threads);
  return ch;
}

} // namespace kiln::rt::avx512plan
