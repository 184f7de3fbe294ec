// The blocked driver of the bench GEMM (own_gemm.h), shared by its ISA builds
// (own_gemm_avx512.cpp, own_gemm_avx2.cpp): A copied into 8-row strips, work items (a block
// of rows x one B panel) split among the threads, rows outermost, each item walking its K
// blocks with the strips under each, so one B block (kc x 48) stays in L1 while the strips
// pass; the next B block is prefetched during the second half of the strips (measured: +6-8
// points of peak with B streaming from memory). The ISA file supplies the tile. Everything
// here has internal linkage: each includer compiles its own copy for its own ISA.
#pragma once

#include "own_gemm.h"
#include "transpose8_avx.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace kiln::bench::gemm {
namespace {

constexpr int MR = static_cast<int>(kRowTile);

struct TileArgs {
  const float *ap;    // the tile's packed strip of A (kc x MR), at column pc
  const float *bp;    // packed B block: kc x 48
  const float *nextB; // a B block the next tiles read: one line per k-step goes to L2
  int64_t nextLines;  // how many of its lines this tile prefetches (<= kc)
  int64_t kc;
  float *c; // the tile's top-left element
  int64_t ldc;
  int rows;      // valid rows (<= MR)
  int validCols; // valid columns (<= 48)
  bool loadC, last;
  int64_t row0, col0; // the tile's position in C (bias and residual)
};

/// Rows [0, rows) of A (k columns, row stride lda) into a strip of k x MR floats (rows past
/// `rows` are zero): 8 x 8 blocks transposed in registers, the k tail one by one.
void packStrip(const float *a, int64_t lda, int64_t rows, int64_t k, float *out) {
  int64_t kk = 0;
  if (rows == MR) {
    for (; kk + 8 <= k; kk += 8)
      kiln::rt::transpose8x8(a + kk, lda, out + kk * MR, MR);
  }
  for (; kk < k; ++kk)
    for (int64_t i = 0; i < MR; ++i)
      out[kk * MR + i] = i < rows ? a[i * lda + kk] : 0.f;
}

int64_t blockM() {
  static const int64_t mc = [] {
    const char *v = std::getenv("KILN_GEMM_MC");
    const long n = v ? std::strtol(v, nullptr, 10) : 0;
    return n >= MR ? static_cast<int64_t>(n) : int64_t{256};
  }();
  return mc;
}

int64_t blockK() {
  static const int64_t kc = [] {
    const char *v = std::getenv("KILN_GEMM_KC");
    const long n = v ? std::strtol(v, nullptr, 10) : 0;
    return n >= 16 ? static_cast<int64_t>(n) : int64_t{256};
  }();
  return kc;
}

/// C = epilogue(A * packed B) with `Tile` computing each MR x 48 tile of one K block.
template <void (*Tile)(const TileArgs &, const Epilogue &)>
void drive(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
           float *c, int64_t ldc, const Epilogue &ep) {
  if (m <= 0 || n <= 0) return;
  const int64_t panels = (n + kPanelCols - 1) / kPanelCols, strips = (m + MR - 1) / MR;
  const int64_t kcMax = std::min(blockK(), std::max<int64_t>(k, 1));
  const int threads = std::max(1, omp_get_max_threads());
  // Work items are (block of rows, panel), row block outermost: a thread keeps its rows of A
  // in L2 while it walks the panels. Blocks of kRowBlock rows, smaller when there would be
  // too few items to share among the threads.
  int64_t perGroup = std::max<int64_t>(1, blockM() / MR);
  while (perGroup > 1 && ((strips + perGroup - 1) / perGroup) * panels < 4 * threads)
    perGroup = (perGroup + 1) / 2;
  const int64_t groups = (strips + perGroup - 1) / perGroup;
  perGroup = (strips + groups - 1) / groups; // even groups: no thread left with a stub
  thread_local std::vector<float> packedA;
  if (packedA.size() < static_cast<size_t>(strips * MR * k)) packedA.resize(strips * MR * k);
  float *ap = packedA.data();
#pragma omp parallel num_threads(static_cast <int>(std::min <int64_t>(threads, strips * panels)))
  {
#pragma omp for schedule(static)
    for (int64_t s = 0; s < strips; ++s)
      packStrip(a + s * MR * lda, lda, std::min<int64_t>(MR, m - s * MR), k, ap + s * MR * k);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < panels * groups; ++item) {
      const int64_t g = item / panels, p = item % panels;
      const int64_t s0 = g * perGroup, s1 = std::min(strips, s0 + perGroup);
      TileArgs t;
      t.col0 = p * kPanelCols;
      t.ldc = ldc;
      t.validCols = static_cast<int>(std::min<int64_t>(kPanelCols, n - t.col0));
      // K blocks outermost: the B block (kc x 48) stays in L1 while the strips pass, and
      // this panel's column of C tiles (m x 48) stays in L1/L2 between the blocks.
      for (int64_t pc = 0; pc < std::max<int64_t>(k, 1); pc += kcMax) {
        t.kc = std::min(kcMax, k - pc);
        t.bp = bPacked + p * k * kPanelCols + pc * kPanelCols;
        t.loadC = pc > 0 || ep.accumulate;
        t.last = pc + t.kc >= k;
        // The block after this one (the next K block, else the next panel's first) is
        // prefetched during the second half of this block's strips, a share per strip.
        const float *next = t.last ? (p + 1 < panels ? bPacked + (p + 1) * k * kPanelCols : nullptr)
                                   : t.bp + t.kc * kPanelCols;
        const int64_t nextKc = t.last ? std::min(kcMax, k) : std::min(kcMax, k - pc - t.kc);
        const int64_t lines = next ? nextKc * kPanelCols / 16 : 0;
        const int64_t late = (s1 - s0) / 2;
        const int64_t perStrip = (lines + (s1 - s0 - late) - 1) / (s1 - s0 - late);
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t done = s - s0 < late ? lines : (s - s0 - late) * perStrip;
          t.nextB = next ? next + 16 * std::min(done, lines) : nullptr;
          t.nextLines = std::clamp<int64_t>(lines - done, 0, std::min(perStrip, t.kc));
          t.ap = ap + s * MR * k + pc * MR;
          t.row0 = s * MR;
          t.c = c + t.row0 * ldc + t.col0;
          t.rows = static_cast<int>(std::min<int64_t>(MR, m - t.row0));
          Tile(t, ep);
        }
      }
    }
  }
}

} // namespace
} // namespace kiln::bench::gemm
