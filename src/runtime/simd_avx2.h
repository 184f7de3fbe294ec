// 8-float AVX2 vectors for kiln's own kernels (include only from files compiled with -mavx2
// -mfma): the operations the kernel templates take from their vector type V, with masked
// forms for a tail of n < W lanes.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace kiln::rt::simd {

struct Avx2 {
  using Reg = __m256;
  static constexpr int W = 8;
  // Lane i is on when i < n (maskload reads the sign bit).
  static __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg bcast(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float *p) { return _mm256_loadu_ps(p); }
  static Reg loadN(const float *p, int64_t n) {
    return n == W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask(n));
  }
  static void store(float *p, Reg v) { _mm256_storeu_ps(p, v); }
  static void storeN(float *p, Reg v, int64_t n) {
    if (n == W)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, mask(n), v);
  }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
};

} // namespace kiln::rt::simd
