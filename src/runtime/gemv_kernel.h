// The body of the GEMV kernel (gemv.h), shared by the ISA files (gemv_avx512.cpp,
// gemv_avx2.cpp, gemv_generic.cpp). V supplies W lanes (simd_*.h); a panel of 16 columns is
// 16 / W registers, and a step takes P panels of MR rows: MR x P x 16 / W accumulators.
#pragma once

#include "gemv.h"

#include <algorithm>

namespace kiln::rt::gemv_kernel {

/// How many steps ahead each of the P streams of B is prefetched (a step reads one 64-byte
/// line per panel, so 32 steps is 2 KiB ahead). A classifier's weights come from DRAM: without
/// it MobileNetV2's 1280 x 1000 GEMV read 5 MiB at ~15-20 GB/s in the model on Zen 5, with it
/// 20-25% faster (docs/perf.md, session 17); 16-128 steps measured alike.
constexpr int64_t kPrefetchSteps = 32;

template <class V, int MR, int P>
[[gnu::always_inline]] inline void step(const GemvParams &g, const float *a, const float *packed,
                                        float *c, int64_t p) {
  using Reg = typename V::Reg;
  constexpr int R = kGemvPanel / V::W; // registers per panel
  Reg acc[MR][P * R];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < P * R; ++j)
      acc[i][j] = V::bcast(0.f);
  const int64_t panelFloats = g.k * kGemvPanel;
  const float *w = packed + p * panelFloats;
  for (int64_t q = 0; q < g.k; ++q) {
    // Each step eats one line of each of the P streams; ask for the line kPrefetchSteps ahead.
    for (int pp = 0; pp < P; ++pp)
      __builtin_prefetch(w + pp * panelFloats + (q + kPrefetchSteps) * kGemvPanel);
    Reg wv[P * R];
    for (int pp = 0; pp < P; ++pp)
      for (int r = 0; r < R; ++r)
        wv[pp * R + r] = V::load(w + pp * panelFloats + q * kGemvPanel + r * V::W);
    for (int i = 0; i < MR; ++i) {
      const Reg av = V::bcast(a[i * g.lda + q]);
      for (int j = 0; j < P * R; ++j)
        acc[i][j] = V::fma(av, wv[j], acc[i][j]);
    }
  }
  const Reg alpha = V::bcast(g.alpha), beta = V::bcast(g.beta), lo = V::bcast(g.lo),
            hi = V::bcast(g.hi);
  for (int pp = 0; pp < P; ++pp)
    for (int r = 0; r < R; ++r) {
      const int64_t col = (p + pp) * kGemvPanel + r * V::W;
      if (col >= g.n) continue;
      const int64_t lanes = std::min<int64_t>(V::W, g.n - col);
      for (int i = 0; i < MR; ++i) {
        Reg v = V::mul(acc[i][pp * R + r], alpha);
        if (g.bias) v = V::fma(beta, V::loadN(g.bias + col, lanes), v);
        if (g.residual) v = V::add(v, V::loadN(g.residual + i * g.ldr + col, lanes));
        // max/min return their second operand when one is NaN: a NaN stays NaN.
        v = V::min(hi, V::max(lo, v));
        V::storeN(c + i * g.ldc + col, v, lanes);
      }
    }
}

/// Panels [p0, p1) of rows [0, MR): P panels a step, then one at a time.
template <class V, int MR, int P>
void rowsOf(const GemvParams &g, const float *a, const float *packed, float *c, int64_t p0,
            int64_t p1) {
  int64_t p = p0;
  for (; p + P <= p1; p += P)
    step<V, MR, P>(g, a, packed, c, p);
  for (; p < p1; ++p)
    step<V, MR, 1>(g, a, packed, c, p);
}

/// All m rows (1 to kGemvMaxRows; gemvFits keeps larger m away); P(MR) panels a step.
template <class V, int P1, int P2, int P3, int P4>
void panels(const GemvParams &g, const float *a, const float *packed, float *c, int64_t p0,
            int64_t p1) {
  switch (g.m) {
  case 1:
    return rowsOf<V, 1, P1>(g, a, packed, c, p0, p1);
  case 2:
    return rowsOf<V, 2, P2>(g, a, packed, c, p0, p1);
  case 3:
    return rowsOf<V, 3, P3>(g, a, packed, c, p0, p1);
  default:
    return rowsOf<V, 4, P4>(g, a, packed, c, p0, p1);
  }
}

} // namespace kiln::rt::gemv_kernel
