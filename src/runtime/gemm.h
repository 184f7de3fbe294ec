// kiln's own GEMM for weight MatMuls: C = post(alpha * A * B + beta * bias + residual), B
// constant and packed once into the GEMV's 16-column panels (gemv.h); AVX2 tiles (6 x 16) and
// AVX-512 tiles (8 x 48), the shims picking the widest the CPU and ONEDNN_MAX_CPU_ISA allow.
//
// Why not oneDNN: oneDNN 2.6's AVX2 matmul ran BERT-base's GEMMs at 76-79% of the FMA peak in
// the model on Zen 4 (44% at 128 x 3072 x 768 without column blocks), where the 6 x 16 tile
// runs them at 85-87% (docs/perf.md, session 15). With AVX-512 its kernels ran them at
// 80-86% on Zen 5, the 8 x 48 tile over long K blocks at 88-95% (session 18).
#pragma once

#include "gemv.h"
#include "work_claim.h"

#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <limits>

namespace kiln::rt {

/// The activation applied last: a clamp to [lo, hi] (none, ReLU, Clip) or a GELU.
enum class GemmPost : int { Clamp, GeluErf, GeluTanh };

/// The GEMV's parameters (gemv.h: sizes, strides, alpha, beta, bias, residual, clamp bounds)
/// and the activation; the residual may be C itself.
struct GemmParams : GemvParams {
  GemmPost post = GemmPost::Clamp;
  /// 0: C is row-major (rows ldc apart). Else C is in blocks of one 16-column panel each:
  /// columns [16 j, 16 j + 16) at c + j * cBlockStride, rows ldc (16) apart, as a conv chain's
  /// depthwise conv reads its input (dwconv.h). gemmAvx2 only, N a multiple of 16, no residual,
  /// no fast scheme (gemmAvx2WritesBlocks).
  int64_t cBlockStride = 0;
};

/// Row `row` of C's panel that starts at column col0 (a multiple of 16), in either layout.
[[gnu::always_inline]] inline float *cPanelRow(const GemmParams &g, float *c, int64_t row,
                                               int64_t col0) {
  if (g.cBlockStride) return c + col0 / kGemvPanel * g.cBlockStride + row * g.ldc;
  return c + row * g.ldc + col0;
}

/// Whether gemmAvx2 can write g's C in panel blocks (GemmParams::cBlockStride).
inline bool gemmAvx2WritesBlocks(const GemmParams &g) {
  return g.n % kGemvPanel == 0 && g.residual == nullptr && g.ldc == kGemvPanel;
}

/// Rows of A per register tile (gemmAvx2, gemmAvx512).
constexpr int64_t kGemmTileRows = 6;
constexpr int64_t kGemmTileRowsAvx512 = 8;

/// Whether a Clamp post-op bounds the output (ReLU, Clip), not (-inf, inf). always_inline:
/// the tiles that call it are compiled for different ISAs, and one shared out-of-line copy
/// could come from the widest.
[[gnu::always_inline]] inline bool clampBounds(const GemvParams &g) {
  return g.lo > -std::numeric_limits<float>::infinity() ||
         g.hi < std::numeric_limits<float>::infinity();
}

/// How both tiles' drivers share out a GEMM: the rows in strips of tileRows, the strips in
/// groups of at most maxStrips, each (group, column unit) one work item, groups made smaller
/// until every thread gets several items, and even (no thread left with a stub). Threads: 1
/// inside a parallel region (a conv chain's lanes, whose GEMM is that thread's alone), else
/// the run's. Computed at the baseline ISA (shim_gemm.cpp).
struct GemmRowGroups {
  int64_t strips, perGroup, groups;
  int threads;
};
GemmRowGroups gemmRowGroups(int64_t m, int64_t tileRows, int64_t maxStrips, int64_t columnUnits);

/// Whether GEMM items are claimed (work_claim.h) rather than statically split:
/// KILN_GEMM_STEAL=0 turns claiming off (for A/Bs).
bool gemmClaimsItems();
/// Turns claiming on or off for the whole process (bench/gemm's same-process A/B).
void setGemmClaimsItems(bool on);

/// run(item) for items [0, count) on up to `threads` OpenMP threads: each thread its static
/// share in order, then what a late thread has not started (work_claim.h).
template <class F> void gemmForEachItem(int64_t count, int threads, const F &run) {
  const int team = static_cast<int>(count < threads ? count : threads);
  if (team <= 1) {
    for (int64_t item = 0; item < count; ++item)
      run(item);
    return;
  }
  if (!gemmClaimsItems() || count >= (int64_t{1} << 31)) {
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t item = 0; item < count; ++item)
      run(item);
    return;
  }
  WorkClaims claims(count, team);
#pragma omp parallel num_threads(team)
  claims.drain(omp_get_thread_num(), run);
}

/// Whether this CPU runs gemmAvx2 (AVX2 and FMA).
bool gemmAvx2Supported();

/// C = post(alpha * A * packed B + beta * bias + residual) on the run's OpenMP threads.
/// packedB: packGemvWeights(B) (16-column panels).
void gemmAvx2(const GemmParams &g, const float *a, const float *packedB, float *c);

/// The products of one fast-GEMM scheme (gemm_strassen.cpp forms their operands): A's rows in
/// two halves and C's columns in `cols` parts, so C is 2 x cols blocks (block q: row half
/// q / cols, column part q % cols). Run in this order, product j is a[j] (h x kp, row stride
/// lda[j]) times B's packed combination b[j] (kp x np), and goes into `count[j]` of C's
/// blocks (cBlock), negated where negate says, added to what earlier products put there where
/// add says (else written); both drivers sum the blocks in scratch of their own and write C
/// from them with the epilogue after the last product. The top blocks have h rows, the bottom
/// ones `bottom` (h or h - 1).
constexpr int kMaxFastProducts = 15;
constexpr int kMaxFastDests = 4;
struct StrassenProducts {
  int64_t h, bottom, np, kp;
  int cols, products;
  const float *a[kMaxFastProducts];
  int64_t lda[kMaxFastProducts];
  const float *b[kMaxFastProducts];
  int cBlock[kMaxFastProducts][kMaxFastDests];
  bool negate[kMaxFastProducts][kMaxFastDests], add[kMaxFastProducts][kMaxFastDests];
  int count[kMaxFastProducts];
  // Forms rows [r0, r1) of the formed operands among a[] (gemm_strassen.cpp) on `threads`
  // threads, or null (formed before the call): the AVX2 driver then forms each strip group's
  // rows just before the group's first item, so they are read while still in cache.
  void (*formRows)(const void *context, int64_t r0, int64_t r1, int threads) = nullptr;
  const void *formContext = nullptr;

  int blocks() const { return 2 * cols; }
  /// C's row of block q's row row0 (of a strip starting there).
  int64_t blockRow(int q, int64_t row0) const { return (q < cols ? 0 : h) + row0; }
  /// Rows of a strip of tileRows rows at row0 that block q has (an odd M's bottom blocks end a
  /// row early).
  int blockRows(int q, int64_t row0, int64_t tileRows) const {
    const int64_t rows = q < cols ? h : bottom;
    return static_cast<int>(rows - row0 < 0 ? 0 : rows - row0 < tileRows ? rows - row0 : tileRows);
  }
  /// C's column of block q's first column.
  int64_t blockCol(int q) const { return q % cols * np; }
};

/// Working memory for a GEMM driver's items: `perThread` floats for each of `threads` slots,
/// each 64-byte aligned; grown by the calling thread (so a failed allocation throws there, not
/// inside a parallel region) and kept for its next calls.
float *gemmThreadScratch(int threads, int64_t perThread);
/// The calling thread's slot in that memory while gemmForEachItem(count, threads, ...) runs.
inline int gemmItemSlot(int threads) {
  return threads > 1 && omp_in_parallel() ? omp_get_thread_num() : 0;
}

/// One term of a combination of A's blocks: the block's row (null: an odd M's missing row, read
/// as zeros) and its sign.
struct FastTerm {
  const float *row;
  float sign;
};
/// A combination's terms at most (both schemes' tables; gemm_strassen.cpp checks).
constexpr int kMaxFastTerms = 4;
/// Row r of one of A's combinations (gemm_strassen.cpp): out = the sum of its `count` terms'
/// rows (kp floats each; count <= kMaxFastTerms), on AVX2 (gemm_avx2_strassen.cpp).
void fastASumRowAvx2(const FastTerm *terms, int count, int64_t kp, float *out);

/// C = post(alpha * A * B + beta * bias + residual) as a fast scheme's products on AVX2 tiles
/// (gemm_avx2_strassen.cpp; np a multiple of 16), g the whole GEMM's parameters; the residual
/// may be C itself.
void gemmAvx2Strassen(const GemmParams &g, const StrassenProducts &s, float *c);
/// The same on AVX-512 tiles (gemm_avx512_strassen.cpp).
void gemmAvx512Strassen(const GemmParams &g, const StrassenProducts &s, float *c);

/// Whether the AVX2 driver runs g's whole strips and panels on its lean tile: K a multiple of 8
/// up to 256, alpha 1, at most a bias, a residual other than C and a clamp (gemm_avx2_lean.cpp).
bool gemmAvx2LeanFits(const GemmParams &g, const float *c);
/// Rows [row0, row1) (whole 6-row strips) of one 16-column panel of C (columns col0 on), B
/// the panel (k x 16 floats), on the lean tile.
void gemmAvx2LeanStrips(const GemmParams &g, const float *a, const float *panel, float *c,
                        int64_t row0, int64_t row1, int64_t col0);

/// Columns [n - 24, n) of rows [row0, row1) of a GEMM whose n is 8 past a whole panel, on a
/// 4 x 24 AVX2 tile (gemm_avx2_tail.cpp); gemmAvx2 runs its other columns on the 6 x 16 tile.
void gemmAvx2Tail24(const GemmParams &g, const float *a, const float *packedB, float *c,
                    int64_t row0, int64_t row1);
constexpr int64_t kGemmTailRows = 4;

/// The same with AVX-512 tiles (gemm_avx512.cpp); the same packed B. At 2+ threads, GEMMs
/// of a few uneven work items (small M, narrow N) and deep K share K out among the threads
/// instead, each summing into a partial C, then finishing a share of C's rows from them;
/// GEMMs of 128+ rows in one strip group give each thread a share of the rows.
void gemmAvx512(const GemmParams &g, const float *a, const float *packedB, float *c);

/// Whether gemmAvx512 would share K out among the threads for this GEMM at the current
/// thread count (KILN_GEMM_SPLIT_K=0 turns that off). For tests.
bool gemmAvx512SplitsK(const GemmParams &g, const float *c);

/// Whether gemmAvx512 would give each thread a share of M's rows (all columns) for this GEMM
/// at the current thread count, rather than a share of its column groups (128+ rows that too
/// few strip groups would leave to the column split and that cut evenly;
/// KILN_GEMM_ROW_SPLIT=0 turns that off). For tests.
bool gemmAvx512SplitsRows(const GemmParams &g, const float *c);

} // namespace kiln::rt
