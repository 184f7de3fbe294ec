// The AVX2 GEMM's register tile and blocking, shared by its drivers (gemm_avx2.cpp: plain
// GEMMs; gemm_avx2_strassen.cpp: Strassen's products). Included only by sources compiled with
// -mavx2 -mfma; everything here has internal linkage.
//
// Register tile: 6 rows x 16 columns of C in 12 ymm accumulators; a k-step loads two vectors
// of the B panel and broadcasts six values of A into 12 FMAs (16 registers in all). A is
// read in place, six row streams: copying it into K-major strips first (as BLAS libraries do)
// measured no faster at transformer shapes and up to 2x slower where N is small (a 1x1 conv
// of 64 channels: each float of A then feeds only 4 panels, and the copy costs as much).
#pragma once

#include "gemm.h"

#include "gelu_avx2.h"
#include "gemv.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr int MR = static_cast<int>(kGemmTileRows);
constexpr int64_t NR = kGemvPanel;       // 16: two ymm
constexpr int64_t kBlockK = 256;         // K per block where K is deeper than kWholeK
constexpr int64_t kWholeK = 768;         // K up to this is one block (docs/perf.md, session 35)
constexpr int64_t kProductWholeK = 1536; // the same for a fast scheme's products (session 45)
// Strips per work item at most (72 rows): each panel re-reads its group's rows of A, which
// must stay in L2 between panels; AVX2-only cores have 256-512 KiB of it. On Zen 3 (512 KiB)
// groups of 36 strips (216 rows) ran M = 197 and 1024 GEMMs 4-5% slower, M = 128 ones 2%
// (bench/gemm, B from memory; docs/perf.md, session 34).
constexpr int64_t kGroupStrips = 12;

static_assert(NR == 16, "the tile holds two ymm per row");

__m256i laneMask(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Where a Strassen product's tile goes (gemm_avx2_strassen.cpp): a 6 x 16 block of floats
/// (row stride NR) of one of C's blocks, which it is written into or added to, negated or
/// not. C itself is written from the blocks after the last product.
struct TileDest {
  float *block;
  bool add, negate;
};

struct Tile {
  const float *b;        // the panel at this K block: kc x NR
  int64_t kc;            // k-steps in the block
  const float *prefetch; // lines of the next B block this tile brings to L2
  int64_t prefetchLines;
  int64_t prefetchEvery; // k-steps per prefetched line
  float *c;              // C at the tile's top-left (a product's partial sums: scratch)
  int64_t ldc;           // c's row stride
  const float *r;        // the residual at the tile's top-left (last block), or null
  const float *bias;     // bias at the tile's first column (last block), or null
  int rows, cols;        // valid rows (<= MR) and columns (<= NR)
  bool loadC;            // add C's contents (a later K block, or an in-place residual)
  bool last;             // the last K block: apply the epilogue
  const TileDest *dest;  // a Strassen product's destinations (last block; no epilogue), or null
  int destCount;
};

/// The accumulators of a tile of R rows (R = MR but in a last strip of fewer rows).
template <int R> using Acc = __m256[R][2];

/// The tile's rows of A (up to six) at its K block, read in place.
struct Rows {
  const float *row[MR];
};

/// One k-step: two vectors of B, R broadcasts of A, 2R FMAs.
template <int R>
[[gnu::always_inline]] inline void step(Acc<R> &acc, const Rows &a, int64_t kk, const float *b) {
  const __m256 b0 = _mm256_loadu_ps(b + kk * NR), b1 = _mm256_loadu_ps(b + kk * NR + 8);
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    const __m256 av = _mm256_broadcast_ss(a.row[i] + kk);
    acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
    acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
  }
}

template <int R, class F> [[gnu::always_inline]] inline void forAll(Acc<R> &acc, F f) {
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    acc[i][0] = f(acc[i][0]);
    acc[i][1] = f(acc[i][1]);
  }
}

/// alpha, bias, residual and the activation on the whole tile, each decided once per tile.
template <int R>
[[gnu::always_inline]] inline void epilogue(Acc<R> &acc, const GemmParams &g, const Tile &t,
                                            __m256i mask0, __m256i mask1) {
  if (g.alpha != 1.f) {
    const __m256 alpha = _mm256_set1_ps(g.alpha);
    forAll(acc, [alpha](__m256 v) { return _mm256_mul_ps(v, alpha); });
  }
  if (t.bias) {
    const __m256 beta = _mm256_set1_ps(g.beta);
    const __m256 b0 = _mm256_mul_ps(beta, _mm256_maskload_ps(t.bias, mask0));
    const __m256 b1 = _mm256_mul_ps(beta, _mm256_maskload_ps(t.bias + 8, mask1));
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      acc[i][0] = _mm256_add_ps(acc[i][0], b0);
      acc[i][1] = _mm256_add_ps(acc[i][1], b1);
    }
  }
  if (t.r) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const float *res = t.r + i * g.ldr;
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_maskload_ps(res, mask0));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_maskload_ps(res + 8, mask1));
    }
  }
  switch (g.post) {
  case GemmPost::Clamp:
    if (clampBounds(g)) {
      // NaN is the second operand of max and min, so it passes through.
      const __m256 lo = _mm256_set1_ps(g.lo), hi = _mm256_set1_ps(g.hi);
      forAll(acc, [lo, hi](__m256 v) { return _mm256_min_ps(hi, _mm256_max_ps(lo, v)); });
    }
    break;
  case GemmPost::GeluErf:
    forAll(acc, [](__m256 v) { return geluErf256(v); });
    break;
  case GemmPost::GeluTanh:
    forAll(acc, [](__m256 v) { return geluTanh256(v); });
    break;
  }
}

/// A Strassen product's last K block: alpha * the tile into each destination (whole panels,
/// no masks).
template <int R>
[[gnu::always_inline]] inline void destStore(Acc<R> &acc, const GemmParams &g, const Tile &t) {
  if (g.alpha != 1.f) {
    const __m256 alpha = _mm256_set1_ps(g.alpha);
    forAll(acc, [alpha](__m256 v) { return _mm256_mul_ps(v, alpha); });
  }
  // One loop per kind of destination, so the rows run without a branch each.
  auto rows = [&acc](float *block, auto combine) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      float *out = block + i * NR;
      _mm256_store_ps(out, combine(out, acc[i][0]));
      _mm256_store_ps(out + 8, combine(out + 8, acc[i][1]));
    }
  };
  for (int d = 0; d < t.destCount; ++d) {
    const TileDest &dst = t.dest[d];
    if (dst.add && dst.negate)
      rows(dst.block, [](const float *c, __m256 v) { return _mm256_sub_ps(_mm256_load_ps(c), v); });
    else if (dst.add)
      rows(dst.block, [](const float *c, __m256 v) { return _mm256_add_ps(_mm256_load_ps(c), v); });
    else if (dst.negate)
      rows(dst.block,
           [](const float *, __m256 v) { return _mm256_sub_ps(_mm256_setzero_ps(), v); });
    else
      rows(dst.block, [](const float *, __m256 v) { return v; });
  }
}

/// The lines of a residual (beside C, or C itself) that the last block's epilogue will read,
/// asked into L2 while the tile's k-steps run: no prefetcher follows rows ldr apart. BERT-base
/// b8's attention output projection (1024 x 768 x 768, residual in place) took 5% less of the
/// run with it on Zen 3 (3 alternating profiles; docs/perf.md, session 39).
template <int R>
[[gnu::always_inline]] inline void prefetchResidual(const GemmParams &g, const Tile &t) {
  const float *res = t.r ? t.r : t.c;
  const int64_t ld = t.r ? g.ldr : t.ldc;
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char *>(res + i * ld), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char *>(res + i * ld + NR - 1), _MM_HINT_T1);
  }
}

/// The tile of R = t.rows rows.
template <int R> void tile(const GemmParams &g, const Tile &t, const Rows &a) {
  if (t.last && (t.r || t.loadC)) prefetchResidual<R>(g, t);
  Acc<R> acc;
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i)
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  int64_t kk = 0;
  if (t.prefetchEvery == 1) {
    for (; kk < t.prefetchLines; ++kk) {
      _mm_prefetch(reinterpret_cast<const char *>(t.prefetch + NR * kk), _MM_HINT_T1);
      step<R>(acc, a, kk, t.b);
    }
  } else {
    for (int64_t line = 0; line < t.prefetchLines; ++line) {
      _mm_prefetch(reinterpret_cast<const char *>(t.prefetch + NR * line), _MM_HINT_T1);
      for (const int64_t end = kk + t.prefetchEvery; kk < end; ++kk)
        step<R>(acc, a, kk, t.b);
    }
  }
#pragma GCC unroll 4
  for (; kk < t.kc; ++kk)
    step<R>(acc, a, kk, t.b);

  const __m256i mask0 = laneMask(std::min(t.cols, 8)), mask1 = laneMask(t.cols - 8);
  const bool full = t.cols == NR;
  // The row loops are unrolled so acc is indexed by constants and stays in registers.
  if (t.loadC) {
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const float *out = t.c + i * t.ldc;
      acc[i][0] =
          _mm256_add_ps(acc[i][0], full ? _mm256_loadu_ps(out) : _mm256_maskload_ps(out, mask0));
      acc[i][1] = _mm256_add_ps(acc[i][1], full ? _mm256_loadu_ps(out + 8)
                                                : _mm256_maskload_ps(out + 8, mask1));
    }
  }
  if (t.dest && t.last) return destStore<R>(acc, g, t);
  if (t.last) epilogue<R>(acc, g, t, mask0, mask1);
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    float *out = t.c + i * t.ldc;
    if (full) {
      _mm256_storeu_ps(out, acc[i][0]);
      _mm256_storeu_ps(out + 8, acc[i][1]);
    } else {
      _mm256_maskstore_ps(out, mask0, acc[i][0]);
      _mm256_maskstore_ps(out + 8, mask1, acc[i][1]);
    }
  }
}

/// The tile for t.rows: a last strip of fewer than MR rows computes only those (at M = 128,
/// a 6-row tile on its last 2 rows would be 3% of the GEMM's FMAs spent on nothing).
void tileOfRows(const GemmParams &g, const Tile &t, const Rows &a) {
  // A switch, not a table of function pointers as in gemm_avx512.cpp: through the table
  // GPT-2 and BERT-base ran 2.5-3.8% slower (same-run A/Bs, docs/perf.md session 26), and
  // also with the full strip called directly before it.
  switch (t.rows) {
  case 1:
    return tile<1>(g, t, a);
  case 2:
    return tile<2>(g, t, a);
  case 3:
    return tile<3>(g, t, a);
  case 4:
    return tile<4>(g, t, a);
  case 5:
    return tile<5>(g, t, a);
  default:
    return tile<MR>(g, t, a);
  }
}

/// The blocking of one call: work items of (a group of strips, one panel).
struct Plan {
  int64_t strips, panels, perGroup, groups, kc;
  const float *residual; // a residual beside C (an in-place one is already in C), or null
  bool inPlace;
  bool lean;          // whole strips and panels on the lean tile (gemmAvx2LeanFits)
  int64_t fullStrips; // the first strips, of MR rows each
  int shortRows;      // rows of each strip after them; the last strip has what is left
};

/// How m rows fall into strips (ceil(m / MR) of them in every case). A tile of R rows has 2R
/// independent FMA chains, and two FMA pipes need 2 x the FMA's latency of them: 8 on Zen 3 and
/// Intel cores (4 cycles), 10 on Zen 2 (5 cycles). So strips of 5 or 6 rows wherever m allows
/// (any m of 20 or more: 128 = 18 x 6 + 4 x 5, 64 = 9 x 6 + 2 x 5), where a last strip of 4
/// ran at 80% of the FMA rate on Zen 2 (docs/perf.md, session 43). Smaller m: the last two
/// strips share their rows (8 = 4 + 4, 7 = 4 + 3, 9 = 5 + 4) rather than leave 1-3 to the last.
/// `fiveRowStrips` false keeps MR-row strips but the last two (the lean tile of 1x1 convs runs
/// whole strips only).
void planStrips(Plan &plan, int64_t m, bool fiveRowStrips) {
  const int64_t strips = (m + MR - 1) / MR, tail = m % MR, short1 = strips * MR - m;
  plan.fullStrips = strips;
  plan.shortRows = MR;
  if (tail == 0) return;
  if (fiveRowStrips && short1 <= strips) { // strips of MR and MR - 1 rows add up to m
    plan.fullStrips = strips - short1;
    plan.shortRows = MR - 1;
  } else if (m > MR && tail < 4) {
    plan.fullStrips = strips - 2;
    plan.shortRows = static_cast<int>((MR + tail + 1) / 2);
  } else {
    plan.fullStrips = strips - 1;
    plan.shortRows = static_cast<int>(tail);
  }
}

/// Strip `index` of the `count` under one K block of an item brings its share of the next
/// block of B (`next`, up to kc x NR floats) to L2 while it runs.
[[gnu::always_inline]] inline void sharePrefetch(Tile &t, const float *next, int64_t kc,
                                                 int64_t index, int64_t count) {
  const int64_t share = (kc + count - 1) / count, from = index * share;
  t.prefetch = next + from * NR;
  t.prefetchLines = std::clamp<int64_t>(kc - from, 0, std::min(share, t.kc));
  // A block longer than kBlockK (K of 257-768 in one) spreads its lines over the first
  // half of its k-steps: all in its first k-steps, they slowed 128 x 2304-3072 x 768 by
  // 1-2% on Zen 3 (B from memory), where blocks of 256 were slower spread.
  t.prefetchEvery = t.kc > kBlockK && t.prefetchLines > 0
                        ? std::max<int64_t>(1, t.kc / (2 * t.prefetchLines))
                        : 1;
}

/// Strips [s0, s1) of strip group grp.
[[gnu::always_inline]] inline void groupStrips(const Plan &plan, int64_t grp, int64_t &s0,
                                               int64_t &s1) {
  s0 = grp * plan.perGroup;
  s1 = std::min(plan.strips, s0 + plan.perGroup);
}

/// The first row and the row count of strip s (planStrips).
[[gnu::always_inline]] inline void stripSpan(const Plan &plan, int64_t m, int64_t s, int64_t &row0,
                                             int &rows) {
  const bool full = s < plan.fullStrips;
  row0 = full ? s * MR : plan.fullStrips * MR + (s - plan.fullStrips) * plan.shortRows;
  rows = s == plan.strips - 1 ? static_cast<int>(m - row0) : full ? MR : plan.shortRows;
}

} // namespace
} // namespace kiln::rt
