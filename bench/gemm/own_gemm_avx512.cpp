// The bench GEMM's AVX-512 tile (compiled with -mavx512f -mavx2 -mfma; own_gemm.h describes
// the layouts, own_gemm_driver.h the blocking): 8 x 48 of C in 24 zmm registers, with the
// epilogue applied while the tile is still in registers.
#include "own_gemm_driver.h"

#include "gelu_avx512.h"

#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace kiln::bench::gemm {
namespace {

constexpr int NV = static_cast<int>(kPanelCols / 16); // zmm per tile row

using kiln::rt::geluErf512;
using kiln::rt::geluTanh512;

__m512 finish(__m512 v, const Epilogue &ep, const float *bias, const float *res, __mmask16 m) {
  if (ep.alpha != 1.f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.alpha));
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
  switch (ep.post) {
  case Post::None:
    return v;
  case Post::Relu:
    return _mm512_max_ps(v, _mm512_setzero_ps());
  case Post::Clip:
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(ep.clipMin)), _mm512_set1_ps(ep.clipMax));
  case Post::GeluErf:
    return geluErf512(v);
  case Post::GeluTanh:
    return geluTanh512(v);
  }
  return v;
}

/// One MR x 48 tile of C over one K block, accumulators in registers.
void tile(const TileArgs &t, const Epilogue &ep) {
  __mmask16 cols[NV];
  for (int j = 0; j < NV; ++j) {
    const int v = std::clamp(t.validCols - 16 * j, 0, 16);
    cols[j] = static_cast<__mmask16>((1u << v) - 1u);
  }
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j)
      acc[i][j] = _mm512_setzero_ps();
  const float *ap = t.ap, *bp = t.bp;
  for (int64_t kk = 0; kk < t.kc; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16),
                 b2 = _mm512_loadu_ps(bp + 32);
    if (kk < t.nextLines)
      _mm_prefetch(reinterpret_cast<const char *>(t.nextB + 16 * kk), _MM_HINT_T1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
    }
    ap += MR;
    bp += kPanelCols;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= t.rows) break;
    float *out = t.c + i * t.ldc;
    const float *res =
        t.last && ep.residual ? ep.residual + (t.row0 + i) * ep.ldr + t.col0 : nullptr;
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[i][j];
      if (t.loadC) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cols[j], out + 16 * j));
      if (t.last)
        v = finish(v, ep, ep.bias ? ep.bias + t.col0 + 16 * j : nullptr,
                   res ? res + 16 * j : nullptr, cols[j]);
      _mm512_mask_storeu_ps(out + 16 * j, cols[j], v);
    }
  }
}

} // namespace

void runAvx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
               float *c, int64_t ldc, const Epilogue &ep) {
  drive<tile>(m, n, k, a, lda, bPacked, c, ldc, ep);
}

} // namespace kiln::bench::gemm
