// kiln's AVX2 GEMM (gemm.h; compiled with -mavx2 -mfma).
//
// Register tile: 6 rows x 16 columns of C in 12 ymm accumulators; a k-step loads two vectors
// of the B panel and broadcasts six values of A into 12 FMAs (16 registers in all). A is
// copied per call into K-major strips of 6 rows, so a step reads six adjacent floats.
//
// Blocking: a work item is (a group of strips, one 16-column panel); it walks K in blocks of
// kBlockK, and under each block every strip of the group, so the block of the panel (16 KiB)
// stays in L1 while the strips pass and the item's C (rows x 16) stays in L1/L2 between the
// blocks. While the strips run, each prefetches a share of the next block of B into L2 (the
// panels are one contiguous stream, so the next block is the next kBlockK x 16 floats).
#include "gemm.h"

#include "gelu_avx2.h"
#include "gemv.h"
#include "transpose8_avx.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr int MR = static_cast<int>(kGemmTileRows);
constexpr int64_t NR = kGemvPanel;   // 16: two ymm
constexpr int64_t kBlockK = 256;     // K per block: 16 KiB of a panel
constexpr int64_t kGroupStrips = 36; // strips per work item at most (216 rows)

static_assert(NR == 16, "the tile holds two ymm per row");

__m256i laneMask(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Rows [0, rows) of A (k columns, row stride lda) into out[k][MR]; rows past `rows` are 0.
void packStrip(const float *a, int64_t lda, int rows, int64_t k, float *out) {
  int64_t kk = 0;
  if (rows == MR) {
    const __m256i six = laneMask(MR);
    for (; kk + 8 <= k; kk += 8) {
      __m256 r[8];
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i)
        r[i] = _mm256_loadu_ps(a + i * lda + kk);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8x8InRegisters(r);
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
        _mm256_maskstore_ps(out + (kk + q) * MR, six, r[q]);
    }
  }
  for (; kk < k; ++kk)
    for (int i = 0; i < MR; ++i)
      out[kk * MR + i] = i < rows ? a[i * lda + kk] : 0.f;
}

struct Tile {
  const float *a;        // the strip at this K block: kc x MR
  const float *b;        // the panel at this K block: kc x NR
  int64_t kc;            // k-steps in the block
  const float *prefetch; // lines of the next B block this tile brings to L2
  int64_t prefetchLines;
  float *c;          // C at the tile's top-left
  const float *r;    // the residual at the tile's top-left (last block), or null
  const float *bias; // bias at the tile's first column (last block), or null
  int rows, cols;    // valid rows (<= MR) and columns (<= NR)
  bool loadC;        // add C's contents (a later K block, or an in-place residual)
  bool last;         // the last K block: apply the epilogue
};

__m256 finish(__m256 v, const GemmParams &g, const float *bias, const float *res, int valid,
              __m256i mask) {
  if (g.alpha != 1.f) v = _mm256_mul_ps(v, _mm256_set1_ps(g.alpha));
  if (bias) {
    const __m256 bv = valid == 8 ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, mask);
    v = _mm256_fmadd_ps(bv, _mm256_set1_ps(g.beta), v);
  }
  if (res) v = _mm256_add_ps(v, valid == 8 ? _mm256_loadu_ps(res) : _mm256_maskload_ps(res, mask));
  switch (g.post) {
  case GemmPost::Clamp: // NaN is the second operand of max and min, so it passes through
    return _mm256_min_ps(_mm256_set1_ps(g.hi), _mm256_max_ps(_mm256_set1_ps(g.lo), v));
  case GemmPost::GeluErf:
    return geluErf256(v);
  case GemmPost::GeluTanh:
    return geluTanh256(v);
  }
  return v;
}

/// One k-step: two vectors of B, six broadcasts of A, 12 FMAs.
[[gnu::always_inline]] inline void step(__m256 (&acc)[MR][2], const float *a, const float *b) {
  const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    const __m256 av = _mm256_broadcast_ss(a + i);
    acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
    acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
  }
}

void tile(const GemmParams &g, const Tile &t) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const float *ap = t.a, *bp = t.b;
  int64_t kk = 0;
  for (; kk < t.prefetchLines; ++kk) {
    _mm_prefetch(reinterpret_cast<const char *>(t.prefetch + NR * kk), _MM_HINT_T1);
    step(acc, ap + kk * MR, bp + kk * NR);
  }
#pragma GCC unroll 4
  for (; kk < t.kc; ++kk)
    step(acc, ap + kk * MR, bp + kk * NR);

    // The row loop is unrolled so acc is indexed by constants and stays in registers.
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= t.rows) break;
    float *out = t.c + i * g.ldc;
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      const int valid = std::min(t.cols - 8 * j, 8);
      if (valid <= 0) break;
      const __m256i mask = laneMask(valid);
      __m256 v = acc[i][j];
      if (t.loadC)
        v = _mm256_add_ps(v, valid == 8 ? _mm256_loadu_ps(out + 8 * j)
                                        : _mm256_maskload_ps(out + 8 * j, mask));
      if (t.last)
        v = finish(v, g, t.bias ? t.bias + 8 * j : nullptr, t.r ? t.r + i * g.ldr + 8 * j : nullptr,
                   valid, mask);
      if (valid == 8)
        _mm256_storeu_ps(out + 8 * j, v);
      else
        _mm256_maskstore_ps(out + 8 * j, mask, v);
    }
  }
}

} // namespace

size_t gemmScratchFloats(int64_t m, int64_t k) {
  return static_cast<size_t>((m + MR - 1) / MR * MR * k);
}

void gemmAvx2(const GemmParams &g, const float *a, const float *packedB, float *c, float *scratch) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) return;
  const int64_t strips = (g.m + MR - 1) / MR, panels = (g.n + NR - 1) / NR;
  const int threads = std::max(1, omp_get_max_threads());
  // Groups of strips small enough that every thread gets several items.
  int64_t perGroup = std::min(strips, kGroupStrips);
  while (perGroup > 1 && ((strips + perGroup - 1) / perGroup) * panels < 4 * threads)
    perGroup = (perGroup + 1) / 2;
  const int64_t groups = (strips + perGroup - 1) / perGroup;
  perGroup = (strips + groups - 1) / groups; // even groups: no thread left with a stub
  const int64_t kc = std::min(kBlockK, g.k);
  // An in-place residual is already in C: the first block adds to it (alpha is 1 then, which
  // the shim checks), and the epilogue does not add it again.
  const bool inPlace = g.residual == c;
  const float *residual = inPlace ? nullptr : g.residual;
  const int team = static_cast<int>(std::min<int64_t>(threads, std::max(strips, groups * panels)));
#pragma omp parallel num_threads(team)
  {
#pragma omp for schedule(static)
    for (int64_t s = 0; s < strips; ++s)
      packStrip(a + s * MR * g.lda, g.lda, static_cast<int>(std::min<int64_t>(MR, g.m - s * MR)),
                g.k, scratch + s * MR * g.k);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < groups * panels; ++item) {
      const int64_t grp = item / panels, p = item % panels;
      const int64_t s0 = grp * perGroup, s1 = std::min(strips, s0 + perGroup);
      const int64_t col0 = p * NR;
      Tile t;
      t.cols = static_cast<int>(std::min(NR, g.n - col0));
      for (int64_t pc = 0; pc < g.k; pc += kc) {
        t.kc = std::min(kc, g.k - pc);
        t.b = packedB + (p * g.k + pc) * NR;
        t.loadC = pc > 0 || inPlace;
        t.last = pc + t.kc >= g.k;
        t.bias = t.last && g.bias ? g.bias + col0 : nullptr;
        const float *next = t.b + t.kc * NR;
        const int64_t share = (kc + (s1 - s0) - 1) / (s1 - s0);
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t from = (s - s0) * share;
          t.prefetch = next + from * NR;
          t.prefetchLines = std::clamp<int64_t>(kc - from, 0, std::min(share, t.kc));
          const int64_t row0 = s * MR;
          t.a = scratch + s * MR * g.k + pc * MR;
          t.c = c + row0 * g.ldc + col0;
          t.r = t.last && residual ? residual + row0 * g.ldr + col0 : nullptr;
          t.rows = static_cast<int>(std::min<int64_t>(MR, g.m - row0));
          tile(g, t);
        }
      }
    }
  }
}

} // namespace kiln::rt
