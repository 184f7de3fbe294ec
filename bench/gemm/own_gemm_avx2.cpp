// The bench GEMM's AVX2 tile (compiled with -mavx2 -mfma; own_gemm.h describes the layouts,
// own_gemm_driver.h the blocking). AVX2 has 16 ymm registers, so the 8 x 48 tile of the
// AVX-512 build is computed as four 4 x 24 sub-tiles: 12 accumulators, 3 loads of B and 4
// broadcasts of A per 12 FMAs, the same packed A strips and B panels. The epilogue (bias,
// residual, activation) is applied while a sub-tile is in registers.
#include "own_gemm_driver.h"

#include "gelu_avx2.h"

#include <immintrin.h>

#include <algorithm>

namespace kiln::bench::gemm {
namespace {

constexpr int SR = 4;  // rows of a sub-tile
constexpr int SV = 3;  // ymm per sub-tile row (24 columns)
constexpr int SC = 24; // columns of a sub-tile

using kiln::rt::geluErf256;
using kiln::rt::geluTanh256;

/// Lanes [0, valid) of 8 (valid in [1, 8]).
__m256i laneMask(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__m256 load(const float *p, int valid, __m256i mask) {
  return valid == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

__m256 finish(__m256 v, const Epilogue &ep, const float *bias, const float *res, int valid,
              __m256i mask) {
  if (ep.alpha != 1.f) v = _mm256_mul_ps(v, _mm256_set1_ps(ep.alpha));
  if (bias) v = _mm256_add_ps(v, load(bias, valid, mask));
  if (res) v = _mm256_add_ps(v, load(res, valid, mask));
  switch (ep.post) {
  case Post::None:
    return v;
  case Post::Relu:
    return _mm256_max_ps(v, _mm256_setzero_ps());
  case Post::Clip:
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(ep.clipMin)), _mm256_set1_ps(ep.clipMax));
  case Post::GeluErf:
    return geluErf256(v);
  case Post::GeluTanh:
    return geluTanh256(v);
  }
  return v;
}

/// Rows [r0, r0 + 4) x columns [c0, c0 + 24) of the tile over its K block.
void subTile(const TileArgs &t, const Epilogue &ep, int r0, int c0, bool prefetch) {
  __m256 acc[SR][SV];
#pragma GCC unroll 4
  for (int i = 0; i < SR; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < SV; ++j)
      acc[i][j] = _mm256_setzero_ps();
  const float *ap = t.ap + r0, *bp = t.bp + c0;
  // One k-step: 3 loads of B, 4 broadcasts of A, 12 FMAs.
  auto step = [&acc](const float *a, const float *b) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), b2 = _mm256_loadu_ps(b + 16);
#pragma GCC unroll 4
    for (int i = 0; i < SR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(av, b2, acc[i][2]);
    }
  };
  // The first `lines` steps also prefetch a line of the next B block each; the loops are
  // split and unrolled so the 4-wide front end is not the limit (AVX2's 12 FMAs per step
  // leave less room for loop overhead than AVX-512's 24).
  const int64_t lines = prefetch ? std::min(t.nextLines, t.kc) : 0;
  int64_t kk = 0;
  for (; kk < lines; ++kk) {
    _mm_prefetch(reinterpret_cast<const char *>(t.nextB + 16 * kk), _MM_HINT_T1);
    step(ap + kk * MR, bp + kk * kPanelCols);
  }
#pragma GCC unroll 4
  for (; kk < t.kc; ++kk)
    step(ap + kk * MR, bp + kk * kPanelCols);
#pragma GCC unroll 4
  for (int i = 0; i < SR; ++i) {
    if (r0 + i >= t.rows) break;
    float *out = t.c + (r0 + i) * t.ldc + c0;
    const float *res =
        t.last && ep.residual ? ep.residual + (t.row0 + r0 + i) * ep.ldr + t.col0 + c0 : nullptr;
#pragma GCC unroll 3
    for (int j = 0; j < SV; ++j) {
      const int valid = std::min(t.validCols - c0 - 8 * j, 8);
      if (valid <= 0) break;
      const __m256i mask = laneMask(valid);
      __m256 v = acc[i][j];
      if (t.loadC) v = _mm256_add_ps(v, load(out + 8 * j, valid, mask));
      if (t.last)
        v = finish(v, ep, ep.bias ? ep.bias + t.col0 + c0 + 8 * j : nullptr,
                   res ? res + 8 * j : nullptr, valid, mask);
      if (valid == 8)
        _mm256_storeu_ps(out + 8 * j, v);
      else
        _mm256_maskstore_ps(out + 8 * j, mask, v);
    }
  }
}

/// One MR x 48 tile: its four sub-tiles, the first one issuing the prefetches.
void tile(const TileArgs &t, const Epilogue &ep) {
  bool first = true;
  for (int c0 = 0; c0 < t.validCols; c0 += SC)
    for (int r0 = 0; r0 < t.rows; r0 += SR) {
      subTile(t, ep, r0, c0, first);
      first = false;
    }
}

} // namespace

void runAvx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
             float *c, int64_t ldc, const Epilogue &ep) {
  drive<tile>(m, n, k, a, lda, bPacked, c, ldc, ep);
}

} // namespace kiln::bench::gemm
