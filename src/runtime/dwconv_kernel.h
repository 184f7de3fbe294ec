// The body of the depthwise 3x3 NHWC row kernel, shared by the ISA files (dwconv_avx512.cpp,
// dwconv_avx2.cpp, dwconv_generic.cpp). V supplies W lanes: load/store/fma/min/max, and
// masked forms for a channel tail shorter than W.
//
// With pads <= 1 a tap row or column is missing only at the map's border, and only on one
// side (unless the map is narrower than 3). The common cases are compiled as separate
// fully unrolled pixel functions (taps [R0, R1) x [C0, C1)); the rest (channel tails, maps
// narrower than 3) takes a general path that checks every tap.
#pragma once

#include "dwconv.h"

namespace kiln::rt::dw {

template <class V> struct Ctx {
  using Reg = typename V::Reg;
  const float *rows[3]; // tap rows at the current channel offset (nullptr: padding)
  int64_t C;            // stride of an output pixel
  int64_t inC;          // stride of an input pixel (C, or the channel block's width)
  Reg wk[9], b, lo, hi;

  // max/min return their second operand when one is NaN: a NaN sum stays NaN.
  Reg clamp(Reg v) const { return V::min(hi, V::max(lo, v)); }
};

// One output pixel from taps [R0, R1) x [C0, C1), input column of tap 0 at `ix0`. IC, here and
// below: the input pixel stride when it is a compile-time constant (rows), 0 to read k.inC.
template <class V, int R0, int R1, int C0, int C1, int IC>
[[gnu::always_inline]] inline typename V::Reg pixel(const Ctx<V> &k, int64_t ix0) {
  const int64_t inC = IC ? IC : k.inC;
  using Reg = typename V::Reg;
  Reg acc[3];
#pragma GCC unroll 3
  for (int kh = R0; kh < R1; ++kh) {
    const float *r = k.rows[kh] + ix0 * inC;
    Reg a = kh == R0 ? k.b : V::mul(V::load(r + C0 * inC), k.wk[kh * 3 + C0]);
#pragma GCC unroll 3
    for (int kw = kh == R0 ? C0 : C0 + 1; kw < C1; ++kw)
      a = V::fma(V::load(r + kw * inC), k.wk[kh * 3 + kw], a);
    acc[kh] = a;
  }
  Reg s = acc[R0];
#pragma GCC unroll 3
  for (int kh = R0 + 1; kh < R1; ++kh)
    s = V::add(s, acc[kh]);
  return s;
}

// P neighbouring output pixels (ox .. ox + P - 1) with all three tap columns inside the row:
// each input column is loaded once for the pixels that share it, and each pixel is one chain
// of FMAs from the bias (no adds). P chains in flight hide the FMA latency.
template <class V, int R0, int R1, int S, int P, int IC>
[[gnu::always_inline]] inline void pixelGroup(const Ctx<V> &k, int64_t ix0, typename V::Reg *out) {
  const int64_t inC = IC ? IC : k.inC;
  using Reg = typename V::Reg;
  Reg acc[P];
#pragma GCC unroll 8
  for (int q = 0; q < P; ++q)
    acc[q] = k.b;
#pragma GCC unroll 3
  for (int kh = R0; kh < R1; ++kh) {
    const float *r = k.rows[kh] + ix0 * inC;
#pragma GCC unroll 16
    for (int col = 0; col < (P - 1) * S + 3; ++col) {
      const Reg x = V::load(r + col * inC);
#pragma GCC unroll 8
      for (int q = 0; q < P; ++q)
        if (col >= q * S && col < q * S + 3) acc[q] = V::fma(x, k.wk[kh * 3 + col - q * S], acc[q]);
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < P; ++q)
    out[q] = acc[q];
}

// fullRow at stride S (1 or 2), the inner pixels in groups (pixelGroup). Inlined, as is fullRow:
// called, each row paid for copying the Ctx (MobileNetV2's 7- and 14-wide maps ran 1.1-1.7x
// slower). Zen 3, the band shapes of MobileNetV2 (4 output rows, data in cache): stride 1
// 0.82-0.98x of the time of single pixels, stride 2 0.94-1.03x (docs/perf.md, session 36).
template <class V, int R0, int R1, int S, int IC>
[[gnu::always_inline]] inline void fullRowS(const Ctx<V> k, const DwConvParams &p, float *yRow,
                                            int64_t oxIn0, int64_t oxIn1) {
  const int64_t padLeft = p.padLeft, ow = p.ow, C = k.C;
  int64_t ox = 0;
  for (; ox < oxIn0; ++ox) // left border: tap column 0 is padding
    V::store(yRow + ox * C, k.clamp(pixel<V, R0, R1, 1, 3, IC>(k, ox * S - padLeft)));
  // Pixels per group. AVX2: six at stride 1, three at stride 2 (whose groups read more
  // columns); with the blocked input's constant pixel stride, MobileNetV2 1.0-1.4% faster at 1
  // thread and 1% at 2 on Zen 2 than four and two (docs/perf.md, session 45), which had been 1%
  // faster than pairs everywhere (session 44). Wider vectors keep four and two (not measured).
  constexpr int P = V::W == 8 ? (S == 1 ? 6 : 3) : (S == 1 ? 4 : 2);
  for (; ox + P <= oxIn1; ox += P) {
    typename V::Reg o[P];
    pixelGroup<V, R0, R1, S, P, IC>(k, ox * S - padLeft, o);
#pragma GCC unroll 8
    for (int q = 0; q < P; ++q)
      V::store(yRow + (ox + q) * C, k.clamp(o[q]));
  }
  for (; ox + 2 <= oxIn1; ox += 2) {
    typename V::Reg o[2];
    pixelGroup<V, R0, R1, S, 2, IC>(k, ox * S - padLeft, o);
    V::store(yRow + ox * C, k.clamp(o[0]));
    V::store(yRow + (ox + 1) * C, k.clamp(o[1]));
  }
  for (; ox < oxIn1; ++ox)
    V::store(yRow + ox * C, k.clamp(pixel<V, R0, R1, 0, 3, IC>(k, ox * S - padLeft)));
  for (; ox < ow; ++ox) // right border: tap column 2 is padding
    V::store(yRow + ox * C, k.clamp(pixel<V, R0, R1, 0, 2, IC>(k, ox * S - padLeft)));
}

// A full-vector row whose tap rows [R0, R1) are present, on a map at least 3 wide. `k` is
// a copy: the stores to y could alias a referenced Ctx and force reloading its weights.
template <class V, int R0, int R1, int IC>
[[gnu::always_inline]] inline void fullRow(const Ctx<V> k, const DwConvParams &p, float *yRow,
                                           int64_t oxIn0, int64_t oxIn1) {
  if (p.stride == 1) return fullRowS<V, R0, R1, 1, IC>(k, p, yRow, oxIn0, oxIn1);
  if (p.stride == 2) return fullRowS<V, R0, R1, 2, IC>(k, p, yRow, oxIn0, oxIn1);
  const int64_t s = p.stride;
  for (int64_t ox = 0; ox < oxIn0; ++ox) // left border: tap column 0 is padding
    V::store(yRow + ox * k.C, k.clamp(pixel<V, R0, R1, 1, 3, IC>(k, ox * s - p.padLeft)));
  for (int64_t ox = oxIn0; ox < oxIn1; ++ox)
    V::store(yRow + ox * k.C, k.clamp(pixel<V, R0, R1, 0, 3, IC>(k, ox * s - p.padLeft)));
  for (int64_t ox = oxIn1; ox < p.ow; ++ox) // right border: tap column 2 is padding
    V::store(yRow + ox * k.C, k.clamp(pixel<V, R0, R1, 0, 2, IC>(k, ox * s - p.padLeft)));
}

// Floats between neighbouring input pixels of one channel: C in NHWC, the block's width in
// channel blocks (dwconv.h).
inline int64_t inputPixelStride(const DwConvParams &p) {
  return p.inBlock ? p.inBlock : p.c;
}

// Where input row iy of image n starts for channel c (NHWC, or channel blocks: dwconv.h).
inline int64_t inputOffset(const DwConvParams &p, int64_t n, int64_t iy, int64_t c) {
  if (!p.inBlock) return (n * p.h + iy) * p.w * p.c + c;
  return c / p.inBlock * p.inBlockStride + c % p.inBlock + (n * p.h + iy) * p.w * p.inBlock;
}

template <class V, int IC>
void rowsOf(const DwConvParams &p, const float *x, const float *packed, const float *bias, float *y,
            int64_t n, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1) {
  using Reg = typename V::Reg;
  const int64_t C = p.c, W = p.w, s = p.stride;
  // Output columns [oxIn0, oxIn1) have all 3 tap columns inside the row.
  int64_t oxIn0 = p.padLeft > 0 ? (p.padLeft + s - 1) / s : 0;
  int64_t oxIn1 = W - 3 + p.padLeft >= 0 ? (W - 3 + p.padLeft) / s + 1 : 0;
  oxIn1 = oxIn1 < p.ow ? oxIn1 : p.ow;
  // The specialised paths need one missing tap column at most per border pixel.
  const bool wideEnough = W >= 3 && oxIn0 <= oxIn1 && oxIn0 <= 1 && p.ow - oxIn1 <= 1;
  Ctx<V> k;
  k.C = C;
  k.inC = inputPixelStride(p);
  k.lo = V::bcast(p.clipMin);
  k.hi = V::bcast(p.clipMax);
  // Channel blocks outside, rows inside: the weights stay in registers and the 3 input rows
  // of one channel block stay in L1 while consecutive output rows reuse them.
  for (int64_t c = c0; c < c1; c += V::W) {
    const int64_t lanes = c1 - c < V::W ? c1 - c : V::W;
    for (int i = 0; i < 9; ++i)
      k.wk[i] = V::loadN(packed + i * C + c, lanes);
    k.b = bias ? V::loadN(bias + c, lanes) : V::bcast(0.f);
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      const int64_t iy0 = oy * s - p.padTop;
      for (int kh = 0; kh < 3; ++kh) {
        int64_t iy = iy0 + kh;
        k.rows[kh] = iy >= 0 && iy < p.h ? x + inputOffset(p, n, iy, c) : nullptr;
      }
      float *yRow = y + ((n * p.oh + oy) * p.ow) * C + c;
      const bool r0 = k.rows[0], r1 = k.rows[1], r2 = k.rows[2];
      if (lanes == V::W && wideEnough && r1 && (r0 || r2)) {
        if (r0 && r2)
          fullRow<V, 0, 3, IC>(k, p, yRow, oxIn0, oxIn1);
        else if (r2)
          fullRow<V, 1, 3, IC>(k, p, yRow, oxIn0, oxIn1);
        else
          fullRow<V, 0, 2, IC>(k, p, yRow, oxIn0, oxIn1);
        continue;
      }
      // General path: every tap checked.
      for (int64_t ox = 0; ox < p.ow; ++ox) {
        Reg acc = k.b;
        int64_t ix0 = ox * s - p.padLeft;
        for (int kh = 0; kh < 3; ++kh) {
          if (!k.rows[kh]) continue;
          for (int kw = 0; kw < 3; ++kw) {
            int64_t ix = ix0 + kw;
            if (ix < 0 || ix >= W) continue;
            acc = V::fma(V::loadN(k.rows[kh] + ix * k.inC, lanes), k.wk[kh * 3 + kw], acc);
          }
        }
        V::storeN(yRow + ox * C, k.clamp(acc), lanes);
      }
    }
  }
}

// The input pixel stride as a constant where it is 16 floats (a conv chain's channel blocks,
// dwconv.h): the taps' addresses are then fixed offsets from one pointer, where a stride read
// from p costs an address computation per tap (the AVX2 kernel 1.04-1.15x faster on
// MobileNetV2's blocked bands on Zen 2; docs/perf.md, session 45).
template <class V>
void rows(const DwConvParams &p, const float *x, const float *packed, const float *bias, float *y,
          int64_t n, int64_t oy0, int64_t oy1, int64_t c0, int64_t c1) {
  if (inputPixelStride(p) == 16) return rowsOf<V, 16>(p, x, packed, bias, y, n, oy0, oy1, c0, c1);
  rowsOf<V, 0>(p, x, packed, bias, y, n, oy0, oy1, c0, c1);
}

} // namespace kiln::rt::dw
