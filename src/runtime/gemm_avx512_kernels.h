// The AVX-512 GEMM's tiles as its drivers call them (gemm_avx512.cpp: plain GEMMs;
// gemm_avx512_strassen.cpp: Strassen's products): the full 9- or 8-row x 48-column tile
// through the asm loop (gemm_avx512_tile.h), partial tiles through intrinsics, each summing
// over one K block into C with the epilogue after the last. Compiled with -mavx512f (the
// files including it); everything here has internal linkage.
#pragma once

#include "gemm.h"

#include "gelu_avx512.h"
#include "gemm_avx512_plan.h"
#include "gemm_avx512_tile.h"
#include "gemv.h"

#include <immintrin.h>

#include <algorithm>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

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
/// One strip's tile of nv panels (t.rows rows from `strip`, A at the strip's first row and
/// the block's first column): the asm loop for a full 9- or 8-row x 3-panel tile, else the
/// intrinsics.
inline void stripTile(const GemmParams &g, const Tile &t, int64_t nv, const float *strip) {
  if (nv == NV && t.rows == 9)
    fullTile<9>(g, t, strip);
  else if (nv == NV && t.rows == MR && fullTileAsm)
    fullTile<MR>(g, t, strip);
  else
    smallTileOfRows(g, t, nv, strip);
}

} // namespace
} // namespace kiln::rt
