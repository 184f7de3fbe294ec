// The Winograd F(4x4, 3x3) and F(2x2, 3x3) kernels, written once over a vector type V and the
// output tile size TM, compiled per ISA level (conv_winograd_avx512.cpp, conv_winograd_avx2.cpp
// each define V and instantiate both). A = TM + 2 input points per dimension, A x A GEMMs.
//
// Per chunk of output tiles, inside one OpenMP region (barriers between the phases):
//   1. input transform, one (tile, channel vector) per item: V[xi][tile][C] = Bᵀ d B
//   2. A x A GEMMs, one (xi, K panel) per item: M[xi][tile][K] = V[xi] · U[xi]
//   3. output transform, one (tile, K vector) per item: y = act(Aᵀ M A + bias + residual)
// F(4, 3), points 0, ±1, ±2, ∞:
//   Bᵀ = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//         0 4 0 -5 0 1],  Aᵀ = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// F(2, 3), points 0, ±1, ∞:
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  Aᵀ = [1 1 1 0; 0 1 -1 -1]
#pragma once

#include "conv_winograd.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>

namespace kiln::rt::winograd {

template <class V, int TM> struct Impl {
  static_assert(TM == 4 || TM == 2, "F(4x4, 3x3) or F(2x2, 3x3)");
  static constexpr int A = TM + 2; // input points per dimension
  static constexpr int XI = A * A; // GEMMs per chunk
  using Reg = typename V::Reg;
  static constexpr int L = V::kLanes;
  static constexpr int NR = V::kPanelVectors; // vectors per GEMM row
  static constexpr int KB = L * NR;           // panel width in floats
  static constexpr int MR = 6;                // GEMM rows (tiles) per micro-kernel
  static constexpr int kLine = 16;            // floats per cache line
  static constexpr int64_t kPrefetchSteps = 8;

  // out[0..A) = Bᵀ in[0..A) (in / out strided by `s` registers).
  static inline void inputRows(const Reg *in, int s, Reg *out, int so) {
    if constexpr (TM == 2) {
      const Reg d0 = in[0], d1 = in[s], d2 = in[2 * s], d3 = in[3 * s];
      out[0] = V::sub(d0, d2);
      out[so] = V::add(d1, d2);
      out[2 * so] = V::sub(d2, d1);
      out[3 * so] = V::sub(d1, d3);
    } else {
      const Reg d0 = in[0], d1 = in[s], d2 = in[2 * s], d3 = in[3 * s], d4 = in[4 * s],
                d5 = in[5 * s];
      const Reg four = V::bcast(4.f), five = V::bcast(-5.f), two = V::bcast(2.f);
      const Reg d12 = V::add(d1, d2), d1m2 = V::sub(d1, d2), d34 = V::add(d3, d4),
                d4m3 = V::sub(d4, d3), d3m1 = V::sub(d3, d1), d4m2 = V::sub(d4, d2);
      out[0] = V::fma(four, d0, V::fma(five, d2, d4));
      out[so] = V::fnma(four, d12, d34);
      out[2 * so] = V::fma(four, d1m2, d4m3);
      out[3 * so] = V::fma(two, d3m1, d4m2);
      out[4 * so] = V::fnma(two, d3m1, d4m2);
      out[5 * so] = V::fma(four, d1, V::fma(five, d3, d5));
    }
  }

  // out[0..TM) = Aᵀ in[0..A).
  static inline void outputRows(const Reg *in, int s, Reg *out, int so) {
    if constexpr (TM == 2) {
      out[0] = V::add(V::add(in[0], in[s]), in[2 * s]);
      out[so] = V::sub(V::sub(in[s], in[2 * s]), in[3 * s]);
    } else {
      const Reg a = V::add(in[s], in[2 * s]), b = V::sub(in[s], in[2 * s]);
      const Reg c = V::add(in[3 * s], in[4 * s]), d = V::sub(in[3 * s], in[4 * s]);
      out[0] = V::add(V::add(in[0], a), c);
      out[so] = V::fma(V::bcast(2.f), d, b);
      out[2 * so] = V::fma(V::bcast(4.f), c, a);
      out[3 * so] = V::add(V::fma(V::bcast(8.f), d, b), in[5 * s]);
    }
  }

  static void tileOrigin(const Problem &p, int64_t t, int64_t &n, int64_t &oy, int64_t &ox) {
    const int64_t perImage = p.tilesH * p.tilesW;
    n = t / perImage;
    const int64_t r = t - n * perImage;
    oy = r / p.tilesW * TM;
    ox = r % p.tilesW * TM;
  }

  // Tile t (chunk row tl of tc) for channels [c0, c0 + L) into V.
  static void inputTile(const Problem &p, int64_t t, int64_t tl, int64_t tc, int64_t c0) {
    int64_t n, oy, ox;
    tileOrigin(p, t, n, oy, ox);
    const int64_t iy0 = oy - p.padT, ix0 = ox - p.padL;
    const float *xb = p.x + n * p.H * p.W * p.C + c0;
    Reg d[XI], u[XI];
    const bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + A <= p.H && ix0 + A <= p.W;
#pragma GCC unroll 6
    for (int i = 0; i < A; ++i) {
      const int64_t iy = iy0 + i;
      const bool rowOk = iy >= 0 && iy < p.H;
#pragma GCC unroll 6
      for (int j = 0; j < A; ++j) {
        const int64_t ix = ix0 + j;
        const bool ok = inside || (rowOk && ix >= 0 && ix < p.W);
        d[i * A + j] = ok ? V::load(xb + (iy * p.W + ix) * p.C) : V::zero();
      }
    }
#pragma GCC unroll 6
    for (int j = 0; j < A; ++j)
      inputRows(d + j, A, u + j, A); // columns: u = Bᵀ d
    float *out = p.V + tl * p.C + c0;
    const int64_t xiStride = tc * p.C;
#pragma GCC unroll 6
    for (int i = 0; i < A; ++i) {
      Reg v[A];
      inputRows(u + i * A, 1, v, 1); // rows: (Bᵀ d) B
#pragma GCC unroll 6
      for (int j = 0; j < A; ++j)
        V::store(out + (i * A + j) * xiStride, v[j]);
    }
  }

  // rows x KB block of M[xi] = V[xi] (rows x C, row stride C) . U panel (C x KB). Each
  // k-step brings B's lines kPrefetchSteps ahead into L1 (the core's own prefetchers trail
  // 4 lines a step from L2) and, for the first nextLines steps, one line of the next item's
  // panel into L2 (U streams from memory for few tiles): ResNet-50's 3x3 convs 8-17% faster.
  template <int R>
  static void micro(const float *a, int64_t C, const float *b, float *c, int64_t ldc,
                    const float *next, int64_t nextLines) {
    // Fully unrolled so the R x NR accumulators live in registers.
    Reg acc[R][NR];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        acc[r][j] = V::zero();
    for (int64_t k = 0; k < C; ++k) {
      if (k < nextLines) __builtin_prefetch(next + k * kLine, 0, 2);
#pragma GCC unroll 8
      for (int j = 0; j < KB / kLine; ++j)
        __builtin_prefetch(b + (k + kPrefetchSteps) * KB + j * kLine, 0, 3);
      Reg bv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        bv[j] = V::load(b + k * KB + j * L);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const Reg av = V::bcast(a[r * C + k]);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j)
          acc[r][j] = V::fma(av, bv[j], acc[r][j]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j)
        V::store(c + r * ldc + j * L, acc[r][j]);
  }

  using Micro = void (*)(const float *, int64_t, const float *, float *, int64_t, const float *,
                         int64_t);
  static_assert(MR == 6, "kMicro lists micro<1> .. micro<MR>");
  static constexpr Micro kMicro[MR + 1] = {nullptr,   &micro<1>, &micro<2>, &micro<3>,
                                           &micro<4>, &micro<5>, &micro<6>};

  static void gemmPanel(const Problem &p, int64_t xi, int64_t panel, int64_t tc) {
    const float *a = p.V + xi * tc * p.C;
    const float *b = p.U + (xi * (p.K / KB) + panel) * p.C * KB;
    float *c = p.M + xi * tc * p.K + panel * KB;
    // Strips of MR or MR - 1 rows: a last strip of one or two rows would stream the whole
    // weight panel for them (49 tiles = 4 x 6 + 5 x 5, not 8 x 6 + 1).
    const int64_t strips = (tc + MR - 1) / MR, full = tc - strips * (MR - 1);
    // The next item's panel follows this one in U (past U's end the prefetches touch
    // nothing they need, and prefetches do not fault); its lines are shared among the strips.
    const int64_t lines = p.C * KB / kLine, share = (lines + strips - 1) / strips;
    int64_t t = 0;
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t rows = s < full ? MR : std::min<int64_t>(MR - 1, tc - t);
      const float *at = a + t * p.C, *next = b + p.C * KB + s * share * kLine;
      const int64_t nextLines = std::clamp<int64_t>(lines - s * share, 0, share);
      float *ct = c + t * p.K;
      kMicro[rows](at, p.C, b, ct, p.K, next, nextLines);
      t += rows;
    }
  }

  // Tile t (chunk row tl of tc), output channels [k0, k0 + L), from M into y.
  static void outputTile(const Problem &p, int64_t t, int64_t tl, int64_t tc, int64_t k0) {
    int64_t n, oy, ox;
    tileOrigin(p, t, n, oy, ox);
    const float *in = p.M + tl * p.K + k0;
    const int64_t xiStride = tc * p.K;
    Reg m[XI], s[TM * A];
#pragma GCC unroll 36
    for (int xi = 0; xi < XI; ++xi)
      m[xi] = V::load(in + xi * xiStride);
#pragma GCC unroll 6
    for (int j = 0; j < A; ++j)
      outputRows(m + j, A, s + j, A); // columns: s = Aᵀ m (TM x A)
    const Reg bias = p.bias ? V::load(p.bias + k0) : V::zero();
    const Reg lo = V::bcast(p.lo), hi = V::bcast(p.hi);
    const int64_t rows = std::min<int64_t>(TM, p.OH - oy), cols = std::min<int64_t>(TM, p.OW - ox);
    const int64_t base = (n * p.OH + oy) * p.OW + ox;
    for (int i = 0; i < rows; ++i) {
      Reg o[TM];
      outputRows(s + i * A, 1, o, 1); // rows: (Aᵀ m) A
      for (int j = 0; j < cols; ++j) {
        const int64_t at = (base + i * p.OW + j) * p.K + k0;
        Reg v = V::add(o[j], bias);
        if (p.residual) v = V::add(v, V::load(p.residual + at));
        if (p.activate) v = V::min(hi, V::max(lo, v)); // NaN stays NaN (operand order)
        V::store(p.y + at, v);
      }
    }
  }

  // Tiles [t0, t0 + tc) through all three phases on the calling thread (V and M of p hold
  // tc tiles).
  static void runTiles(const Problem &p, int64_t t0, int64_t tc) {
    const int64_t cv = p.C / L, kv = p.K / L, panels = p.K / KB;
    for (int64_t i = 0; i < tc * cv; ++i)
      inputTile(p, t0 + i / cv, i / cv, tc, i % cv * L);
    for (int64_t i = 0; i < XI * panels; ++i)
      gemmPanel(p, i / panels, i % panels, tc);
    for (int64_t i = 0; i < tc * kv; ++i)
      outputTile(p, t0 + i / kv, i / kv, tc, i % kv * L);
  }

  // Each thread its own share of the tiles, in chunks of its own share of V and M: no barriers,
  // and V and M stay in the core that wrote them, where the phase split below hands half of
  // each to the other core between phases. Every thread streams all of U instead. At most one
  // thread per tile of a chunk, so that every thread's share (chunk / team tiles) fits the
  // scratch (a forced split of a small conv on many threads would otherwise run past it).
  static void runByTiles(const Problem &p) {
    const int64_t T = p.N * p.tilesH * p.tilesW;
    const int threads = static_cast<int>(std::min<int64_t>(omp_get_max_threads(), p.chunk));
#pragma omp parallel num_threads(threads)
    {
      const int th = omp_get_thread_num(), team = omp_get_num_threads();
      const int64_t sub = p.chunk / team;
      Problem mine = p;
      mine.V = p.V + th * XI * sub * p.C;
      mine.M = p.M + th * XI * sub * p.K;
      const int64_t end = T * (th + 1) / team;
      for (int64_t t0 = T * th / team; t0 < end; t0 += sub)
        runTiles(mine, t0, std::min(sub, end - t0));
    }
  }

  static void run(const Problem &p) {
    if (p.splitTiles) return runByTiles(p);
    const int64_t T = p.N * p.tilesH * p.tilesW;
    const int64_t cv = p.C / L, kv = p.K / L, panels = p.K / KB;
#pragma omp parallel
    for (int64_t t0 = 0; t0 < T; t0 += p.chunk) {
      const int64_t tc = std::min(p.chunk, T - t0);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < tc * cv; ++i)
        inputTile(p, t0 + i / cv, i / cv, tc, i % cv * L);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < XI * panels; ++i)
        gemmPanel(p, i / panels, i % panels, tc);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < tc * kv; ++i)
        outputTile(p, t0 + i / kv, i / kv, tc, i % kv * L);
    }
  }
};

} // namespace kiln::rt::winograd
