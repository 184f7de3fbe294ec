// The attention kernel of one ISA level, written once over a small vector type V (width
// V::W floats: load, store, bcast, fma, max, exp, horizontal max/sum, an 8x8 transpose, a
// test that all lanes are at most a limit). Included only by sdpa_avx512.cpp, sdpa_avx2.cpp and
// sdpa_generic.cpp, each compiled with its ISA's flags after defining its V. Everything here
// has internal linkage and uses no std:: templates, so the linker can never hand a baseline
// caller a copy compiled for a wider ISA.
//
// Per block of MR query rows: scores for KB keys at a time by a register-blocked micro-kernel
// (MR query rows read in place x 2 vectors of keys, K packed as [D][2W] panels);
// online softmax (a running max and sum per row, one exp per score, the output rescaled when
// the max grows); P*V accumulated into an MR x Dv tile by a second micro-kernel over V read in
// place or packed as [Skv][2W] panels (Tile's PackV). The output is divided by the row sum
// once at the end. Keys past the last one some row of the block may attend (masked with -inf
// or finfo.min: causal, padding) are not computed at all.
#pragma once

#include "sdpa_kernels.h"

#include <cstdint>

namespace kiln::rt::sdpa {
namespace {

constexpr int64_t kKeyBlock = 256; // keys per online-softmax step: the score tile's width

inline int64_t roundUp(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}
inline int64_t minOf(int64_t a, int64_t b) {
  return a < b ? a : b;
}
inline int64_t aligned(int64_t floats) { // keeps every scratch block 64-byte aligned
  return roundUp(floats, 16);
}

/// PackV: V copied into [Skv][2W] panels per head (AVX2: in place, a fused projection's V rows
/// 9 KiB apart fell into 4 sets of its 8-way 32 KiB L1, and every P*V pass missed L1 on each
/// row; packed, kiln_sdpa_bench 1-5% faster on Zen 3). Without it V is read in place and
/// copied only where Dv is not a whole number of vectors (on an AVX-512 Xeon, packing V rows
/// made BERT-base b8's attention 8% slower, session 24).
template <class V, int MR, bool PackV> struct Tile {
  using Reg = typename V::Reg;
  static constexpr int W = V::W;
  static constexpr int PW = 2 * W; // keys per packed K panel
  static constexpr int64_t KB = kKeyBlock;
  static_assert(KB % PW == 0, "a key block holds whole K panels");

  static int64_t dvPad(int64_t Dv) { return roundUp(Dv, W); }
  static int64_t vPanels(int64_t Dv) { return (Dv + PW - 1) / PW; }
  static int64_t packedKFloats(int64_t Skv, int64_t D) { return aligned(roundUp(Skv, PW) * D); }

  static bool packsV(int64_t Dv) { return PackV || Dv % W != 0; }

  static int64_t packedFloats(int64_t Skv, int64_t D, int64_t Dv) {
    return packedKFloats(Skv, D) + (packsV(Dv) ? aligned(vPanels(Dv) * Skv * PW) : 0);
  }
  static int64_t workFloats(int64_t D, int64_t Dv) {
    return aligned(MR * KB) + aligned(MR * dvPad(Dv)) + aligned(2 * MR);
  }

  /// V as panels of PW columns, each [Skv][PW] (columns past Dv are zero).
  static void packV(const Head &h, float *vp) {
    for (int64_t p = 0; p < vPanels(h.Dv); ++p) {
      const int64_t c0 = p * PW, n = minOf(PW, h.Dv - c0);
      float *dst = vp + p * h.Skv * PW;
      for (int64_t j = 0; j < h.Skv; ++j, dst += PW) {
        const float *src = h.v + j * h.ldv + c0;
        if (n == PW) {
          V::store(dst, V::load(src));
          V::store(dst + W, V::load(src + W));
          continue;
        }
        for (int64_t d = 0; d < n; ++d)
          dst[d] = src[d];
        for (int64_t d = n; d < PW; ++d)
          dst[d] = 0.f;
      }
    }
  }

  /// K as panels of PW keys, each [D][PW] (keys past Skv are zero), then V (packV).
  static void packHead(const Head &h, float *packed) {
    const int64_t panels = (h.Skv + PW - 1) / PW, D = h.D, D8 = D / 8 * 8;
    for (int64_t p = 0; p < panels; ++p) {
      float *dst = packed + p * PW * D;
      const int64_t n = minOf(PW, h.Skv - p * PW);
      const int64_t ldk = h.ldk;
      const float *src = h.k + p * PW * ldk;
      int64_t j = 0;
      for (; j + 8 <= n; j += 8) { // 8 keys x 8 dims at a time through registers
        for (int64_t d = 0; d < D8; d += 8)
          V::transpose8(src + j * ldk + d, ldk, dst + d * PW + j, PW);
        for (int64_t d = D8; d < D; ++d)
          for (int64_t jj = j; jj < j + 8; ++jj)
            dst[d * PW + jj] = src[jj * ldk + d];
      }
      for (; j < n; ++j)
        for (int64_t d = 0; d < D; ++d)
          dst[d * PW + j] = src[j * ldk + d];
      for (; j < PW; ++j)
        for (int64_t d = 0; d < D; ++d)
          dst[d * PW + j] = 0.f;
    }
    if (packsV(h.Dv)) packV(h, packed + packedKFloats(h.Skv, h.D));
  }

  /// s[i][0, NK * W) = scale * (query row q[i] . the first NK * W keys of one K panel), for
  /// the MR rows: NK = 2 the whole panel, 1 its first half (a block's last W keys or fewer:
  /// ViT's 197 keys are 6 panels and 5 keys, a causal block's live keys end anywhere).
  template <int NK>
  static inline void scorePanel(const float *const *q, const float *kp, int64_t D, float scale,
                                float *s) {
    Reg acc[MR][NK];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int c = 0; c < NK; ++c)
        acc[i][c] = V::zero();
    for (int64_t d = 0; d < D; ++d) {
      Reg k[NK];
#pragma GCC unroll 2
      for (int c = 0; c < NK; ++c)
        k[c] = V::load(kp + d * PW + c * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const Reg b = V::bcast(q[i][d]);
#pragma GCC unroll 2
        for (int c = 0; c < NK; ++c)
          acc[i][c] = V::fma(b, k[c], acc[i][c]);
      }
    }
    const Reg sc = V::bcast(scale);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int c = 0; c < NK; ++c)
        V::store(s + i * KB + c * W, V::mul(acc[i][c], sc));
  }

  /// o[i][0, NV*W) += sum over j < nk of p[i][j] * v[j][0, NV*W), for the MR rows.
  template <int NV>
  static inline void accumulatePV(const float *p, const float *v, int64_t ldV, int64_t nk, float *o,
                                  int64_t ldO) {
    Reg acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c)
        acc[i][c] = V::load(o + i * ldO + c * W);
    for (int64_t j = 0; j < nk; ++j) {
      Reg vr[NV];
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c)
        vr[c] = V::load(v + j * ldV + c * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const Reg b = V::bcast(p[i * KB + j]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; ++c)
          acc[i][c] = V::fma(b, vr[c], acc[i][c]);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c)
        V::store(o + i * ldO + c * W, acc[i][c]);
  }

  /// Whether query `row` has a key whose mask is above -FLT_MAX (-inf and finfo.min are the
  /// fills masks use; a row masked only with finfo.min averages over all its keys).
  static bool hasLiveKey(const Head &h, int64_t row) {
    const float *m = h.mask + row * h.maskRowStride;
    for (int64_t j = 0; j < h.Skv; ++j)
      if (m[j * h.maskColStride] > -__FLT_MAX__) return true;
    return false;
  }

  /// How many of the nk keys from kb0 on some row of the block may attend: keys after the
  /// last one whose mask is above `dead` in every row (causal masks above the diagonal,
  /// padding at the end) add exactly nothing and are skipped. `dead` is -FLT_MAX when every
  /// row has a key above it (then exp(-FLT_MAX - max) == 0 for the masked ones), else -inf.
  static int64_t liveKeys(const Head &h, int64_t r0, int64_t nr, int64_t kb0, int64_t nk,
                          float dead) {
    int64_t live = 0;
    const Reg deadV = V::bcast(dead);
    for (int64_t i = 0; i < nr && live < nk; ++i) {
      const float *m = h.mask + (r0 + i) * h.maskRowStride + kb0 * h.maskColStride;
      int64_t j = nk;
      if (h.maskColStride == 1) // a vector of dead keys at a time, then one by one
        while (j - W >= live && V::allAtMost(V::load(m + j - W), deadV))
          j -= W;
      while (j > live && m[(j - 1) * h.maskColStride] <= dead)
        --j;
      live = j > live ? j : live;
    }
    return live;
  }

  /// One online-softmax step of one row: the mask row (keys kb0 onwards of the row, or null)
  /// is added to the scores s[0, nk), which become exp(s - max so far) in place; the row's max
  /// m and sum l move on, and its output row o is rescaled if the max grew. The mask is added
  /// in the pass that finds the max: a pass of its own made BERT-base's attention (1 x 12 x 128
  /// x 64, padding mask) 2.7% slower on Zen 2 (kiln_sdpa_bench, 0.668 against 0.650 ms).
  static void softmaxStep(float *s, int64_t nk, const float *mask, int64_t maskColStride, float &m,
                          float &l, float *o, int64_t dvPad) {
    const int64_t nkPad = roundUp(nk, W);
    Reg mx = V::bcast(m);
    int64_t j = 0;
    if (mask && maskColStride == 1)
      for (; j + W <= nk; j += W) {
        const Reg v = V::add(V::load(s + j), V::load(mask + j));
        V::store(s + j, v);
        mx = V::max(mx, v);
      }
    for (int64_t t = j; mask && t < nk; ++t) // a strided mask, or the last partial vector
      s[t] += mask[t * maskColStride];
    for (int64_t t = nk; t < nkPad; ++t)
      s[t] = -__builtin_inff(); // the rest of the last vector: weight 0
    for (; j < nkPad; j += W)
      mx = V::max(mx, V::load(s + j));
    const float mNew = V::hmax(mx);
    if (mNew == -__builtin_inff()) { // every key so far masked out: nothing to add
      for (int64_t j = 0; j < nk; ++j)
        s[j] = 0.f;
      return;
    }
    const Reg sub = V::bcast(mNew);
    Reg sum = V::zero();
    for (int64_t j = 0; j < nkPad; j += W) {
      const Reg e = V::exp(V::sub(V::load(s + j), sub));
      V::store(s + j, e);
      sum = V::add(sum, e);
    }
    if (m != mNew && m != -__builtin_inff()) {
      const float alpha = __builtin_expf(m - mNew);
      l *= alpha;
      const Reg a = V::bcast(alpha);
      for (int64_t d = 0; d < dvPad; d += W)
        V::store(o + d, V::mul(V::load(o + d), a));
    }
    l += V::hsum(sum);
    m = mNew;
  }

  static void rows(const Head &h, const float *packed, float *work, int64_t firstBlock,
                   int64_t endBlock) {
    const int64_t D = h.D, ldO = dvPad(h.Dv);
    float *s = work;
    float *o = s + aligned(MR * KB);
    float *rowMax = o + aligned(MR * ldO), *rowSum = rowMax + MR;
    const bool vPacked = packsV(h.Dv);
    const float *v = vPacked ? packed + packedKFloats(h.Skv, D) : h.v;
    for (int64_t blk = firstBlock; blk < endBlock; ++blk) {
      const int64_t r0 = blk * MR, nr = minOf(MR, h.Sq - r0);
      const float *q[MR]; // a padding row of the last block repeats the last real row
      for (int i = 0; i < MR; ++i)
        q[i] = h.q + (r0 + minOf(i, nr - 1)) * h.ldq;
      for (int64_t x = 0; x < MR * ldO; ++x)
        o[x] = 0.f;
      for (int i = 0; i < MR; ++i) {
        rowMax[i] = -__builtin_inff();
        rowSum[i] = 0.f;
      }
      float dead = -__FLT_MAX__;
      for (int64_t i = 0; h.mask && i < nr && dead != -__builtin_inff(); ++i)
        if (!hasLiveKey(h, r0 + i)) dead = -__builtin_inff();
      for (int64_t kb0 = 0; kb0 < h.Skv; kb0 += KB) {
        const int64_t nk = h.mask ? liveKeys(h, r0, nr, kb0, minOf(KB, h.Skv - kb0), dead)
                                  : minOf(KB, h.Skv - kb0);
        if (nk == 0) continue; // every key of this block masked out in every row
        for (int64_t p = 0; p * PW < nk; ++p) {
          const float *kp = packed + (kb0 / PW + p) * PW * D;
          if (nk - p * PW > W)
            scorePanel<2>(q, kp, D, h.scale, s + p * PW);
          else
            scorePanel<1>(q, kp, D, h.scale, s + p * PW);
        }
        for (int i = 0; i < MR; ++i) {
          float *si = s + i * KB;
          if (i >= nr) { // a padding row of the last block: weight 0
            for (int64_t j = 0; j < nk; ++j)
              si[j] = 0.f;
            continue;
          }
          const float *mask =
              h.mask ? h.mask + (r0 + i) * h.maskRowStride + kb0 * h.maskColStride : nullptr;
          softmaxStep(si, nk, mask, h.maskColStride, rowMax[i], rowSum[i], o + i * ldO, ldO);
        }
        int64_t c = 0;
        // V's columns [c, c + PW) from key kb0 on: a packed panel, or V in place.
        auto vAt = [&](int64_t col) {
          return vPacked ? v + (col / PW * h.Skv + kb0) * PW : v + kb0 * h.ldv + col;
        };
        const int64_t ldV = vPacked ? PW : h.ldv;
        for (; c + PW <= ldO; c += PW)
          accumulatePV<2>(s, vAt(c), ldV, nk, o + c, ldO);
        if (c < ldO) accumulatePV<1>(s, vAt(c), ldV, nk, o + c, ldO);
      }
      for (int64_t i = 0; i < nr; ++i) {
        const float inv = rowSum[i] > 0.f ? 1.0f / rowSum[i] : 0.f; // 0: all keys masked
        float *dst = h.out + (r0 + i) * h.ldo;
        const float *src = o + i * ldO;
        int64_t d = 0;
        const Reg vi = V::bcast(inv);
        for (; d + W <= h.Dv; d += W)
          V::store(dst + d, V::mul(V::load(src + d), vi));
        for (; d < h.Dv; ++d)
          dst[d] = src[d] * inv;
      }
    }
  }

  static constexpr Kernels kernels(const char *name) {
    return Kernels{name, MR, packedFloats, workFloats, packHead, rows};
  }
};

} // namespace
} // namespace kiln::rt::sdpa
