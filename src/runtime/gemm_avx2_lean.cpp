// The AVX2 GEMM's lean tile: 6 rows x 16 columns like gemm_avx2.cpp's, for the plain GEMMs of
// short K that CNNs are made of (1x1 convs: a bias, a residual beside C and a ReLU or ReLU6 at
// most, K = 16-256).
//
// Why a second tile: the general one carries what transformer GEMMs need (K blocks, C loaded
// back, spread L2 prefetches, masked columns, residual and GELU epilogues) in a Tile record
// and masks around the k-steps, and GCC spilled accumulators around them; over a short K that
// work is a large share of each tile (MobileNetV2's 896 x 96 x 16 ran at 37-45 GFLOP/s on Zen
// 3). Here only the tile lives across the k-steps: the row pointers are locals, C starts from
// beta * bias, the bounds are read after the last k-step, and the k-steps are fully unrolled
// for K = 16, 24 and 32, eight at a time otherwise. Zen 3, against the general tile (same
// process, alternating, the geometric mean of both orders; docs/perf.md, session 36): K = 16
// 1.43x, K = 24 1.36x, K = 64 1.10x, K = 96-128 1.04x, K = 160-256 1.02-1.03x; K = 512 level
// and K = 768 0.96x (measured before it prefetched the next panel), so longer K stays on the
// general tile. Compiled with -mavx2 -mfma, like gemm_avx2.cpp.
#include "gemm.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr int MR = static_cast<int>(kGemmTileRows);
constexpr int64_t NR = kGemvPanel;
constexpr int64_t kLeanMaxK = 256;

/// One k-step of the tile: two vectors of the panel, six broadcasts of A, twelve FMAs.
[[gnu::always_inline]] inline void step(__m256 (&acc)[MR][2], const float *const (&row)[MR],
                                        int64_t kk, const float *b) {
  const __m256 b0 = _mm256_loadu_ps(b + kk * NR), b1 = _mm256_loadu_ps(b + kk * NR + 8);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    const __m256 av = _mm256_broadcast_ss(row[i] + kk);
    acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
    acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
  }
}

/// One strip's tile: C = clamp(beta * bias + A B + residual). K > 0: the k-steps fully
/// unrolled; K = 0: k (a multiple of 8) eight at a time. bias: 16 floats already times beta, or
/// null; res: the residual at the tile's corner (rows ldr apart), or null; bounds: {lo, hi},
/// or null for no clamp; pf: pfLines lines (k-steps) of B's next panel to bring to L2.
template <int K>
[[gnu::always_inline]] inline void leanTile(const float *a, int64_t lda, const float *b, int64_t k,
                                            const float *bias, const float *res, int64_t ldr,
                                            const float *bounds, float *c, int64_t ldc,
                                            const float *pf, int64_t pfLines) {
  __m256 acc[MR][2];
  const float *row[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
    row[i] = a + i * lda;
  const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = bias0;
    acc[i][1] = bias1;
  }
  if constexpr (K > 0) {
    for (int64_t line = 0; line < pfLines; ++line)
      _mm_prefetch(reinterpret_cast<const char *>(pf + line * NR), _MM_HINT_T1);
#pragma GCC unroll 32
    for (int kk = 0; kk < K; ++kk)
      step(acc, row, kk, b);
  } else {
    // The prefetched lines spread over the k-steps: a few per eight.
    const int64_t per = (pfLines * 8 + k - 1) / k;
    int64_t line = 0;
    for (int64_t k8 = 0; k8 < k; k8 += 8) {
      for (int64_t end = std::min(pfLines, line + per); line < end; ++line)
        _mm_prefetch(reinterpret_cast<const char *>(pf + line * NR), _MM_HINT_T1);
#pragma GCC unroll 8
      for (int kk = 0; kk < 8; ++kk)
        step(acc, row, k8 + kk, b);
    }
  }
  if (res) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(res + i * ldr));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(res + i * ldr + 8));
    }
  }
  if (bounds) {
    const __m256 lo = _mm256_broadcast_ss(bounds), hi = _mm256_broadcast_ss(bounds + 1);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) { // NaN passes: it is max's and min's second operand
      acc[i][0] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][0]));
      acc[i][1] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][1]));
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(c + i * ldc, acc[i][0]);
    _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
  }
}

template <int K>
void leanStrips(const GemmParams &g, const float *a, const float *panel, float *c, int64_t row0,
                int64_t row1, int64_t col0) {
  alignas(32) float bias[NR];
  if (g.bias)
    for (int j = 0; j < NR; ++j)
      bias[j] = g.beta * g.bias[col0 + j];
  const float bounds[2] = {g.lo, g.hi};
  const bool clamp = clampBounds(g);
  // The next panel (the next work item's; past B's end the prefetches touch nothing they need,
  // and prefetches do not fault) comes to L2 a share per strip: where B streams from memory
  // (weights used once, a few strips a panel) the first strip of each panel otherwise waited
  // for all of it. Zen 2, bench/gemm, B from memory: 64 x 1024 x 256 85.8 -> 93.7 GFLOP/s, 49 x
  // 960 x 160 79.7 -> 88.9, B in cache 0.99-1.01x; MobileNetV2 0.4% faster at 1 thread, ResNet-50
  // level (docs/perf.md, session 44).
  const float *nextPanel = panel + g.k * NR;
  const int64_t strips = (row1 - row0) / MR, share = strips > 0 ? (g.k + strips - 1) / strips : 0;
  for (int64_t r = row0; r < row1; r += MR) {
    const int64_t from = (r - row0) / MR * share;
    const int64_t pfLines = std::clamp<int64_t>(g.k - from, 0, share);
    // The next strip's residual and C lines, asked for while this tile runs: rows ldr apart,
    // which no prefetcher follows. ResNet-50's 1x1 expansions adding the shortcut took 5% less
    // time at 1 thread on Zen 2 (the model 1.3-1.6% faster; docs/perf.md, session 43); without
    // a residual (C alone, MobileNetV2's expansions on bands in cache) it cost 1%.
    if (g.residual && r + MR < row1)
      for (int i = 0; i < MR; ++i) {
        const int64_t next = r + MR + i;
        _mm_prefetch(reinterpret_cast<const char *>(g.residual + next * g.ldr + col0), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char *>(cPanelRow(g, c, next, col0)), _MM_HINT_T0);
      }
    leanTile<K>(a + r * g.lda, g.lda, panel, g.k, g.bias ? bias : nullptr,
                g.residual ? g.residual + r * g.ldr + col0 : nullptr, g.ldr,
                clamp ? bounds : nullptr, cPanelRow(g, c, r, col0), g.ldc, nextPanel + from * NR,
                pfLines);
  }
}

} // namespace

bool gemmAvx2LeanFits(const GemmParams &g, const float *c) {
  return g.k % 8 == 0 && g.k <= kLeanMaxK && g.residual != c && g.alpha == 1.f &&
         g.post == GemmPost::Clamp;
}

void gemmAvx2LeanStrips(const GemmParams &g, const float *a, const float *panel, float *c,
                        int64_t row0, int64_t row1, int64_t col0) {
  switch (g.k) {
  case 16:
    return leanStrips<16>(g, a, panel, c, row0, row1, col0);
  case 24:
    return leanStrips<24>(g, a, panel, c, row0, row1, col0);
  case 32:
    return leanStrips<32>(g, a, panel, c, row0, row1, col0);
  default:
    return leanStrips<0>(g, a, panel, c, row0, row1, col0);
  }
}

} // namespace kiln::rt
