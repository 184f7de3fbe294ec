// The attention kernels for AVX2 + FMA CPUs (this file is compiled with -mavx2 -mfma; see
// sdpa_kernels.h). 8 floats per vector; 6 query rows per tile: the score micro-kernel keeps
// 6 x 2 accumulators, leaving 3 of the 16 ymm registers for K and the broadcast.
#include "exp_avx2.h"
#include "transpose8_avx.h"

#include <immintrin.h>

#include <cstdint>

namespace kiln::rt::sdpa {
namespace {

struct Avx2 {
  using Reg = __m256;
  static constexpr int W = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float *p) { return _mm256_loadu_ps(p); }
  static void store(float *p, Reg x) { _mm256_storeu_ps(p, x); }
  static Reg bcast(float x) { return _mm256_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static float hmax(Reg x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static bool allAtMost(Reg x, Reg limit) {
    return _mm256_movemask_ps(_mm256_cmp_ps(x, limit, _CMP_LE_OQ)) == 0xff;
  }
  static float hsum(Reg x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  /// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block (K's keys into panel columns).
  static void transpose8(const float *src, int64_t lds, float *dst, int64_t ldd) {
    transpose8x8(src, lds, dst, ldd);
  }
  static Reg exp(Reg x) { return expNonPositive256(x); }
};

} // namespace
} // namespace kiln::rt::sdpa

#include "sdpa_tile.h"

namespace kiln::rt::sdpa {

const Kernels &avx2Kernels() {
  static constexpr Kernels k = Tile<Avx2, 6, true>::kernels("avx2");
  return k;
}

} // namespace kiln::rt::sdpa
