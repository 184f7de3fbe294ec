// Depthwise 3x3 row kernel for AVX2 + FMA CPUs (compiled with -mavx2 -mfma; see dwconv.h):
// 8 channels per vector, masked loads for a channel tail.
#include "dwconv_kernel.h"

#include <immintrin.h>

namespace kiln::rt {
namespace {

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
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
};

} // namespace

const DwRowKernel &dwAvx2Kernel() {
  static const DwRowKernel k{"avx2", Avx2::W, &dw::rows<Avx2>};
  return k;
}

} // namespace kiln::rt
