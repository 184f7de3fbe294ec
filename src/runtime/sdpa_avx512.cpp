// The attention kernels for AVX-512 CPUs (this file is compiled with -mavx512f -mavx2 -mfma;
// see sdpa_kernels.h). 16 floats per vector; 8 query rows per tile: the score micro-kernel
// keeps 8 x 2 accumulators (16 of the 32 zmm registers) over 4 FMA latencies x 2 pipes.
#include "exp_avx512.h"
#include "transpose8_avx.h"

#include <immintrin.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>

namespace kiln::rt::sdpa {
namespace {

struct Avx512 {
  using Reg = __m512;
  static constexpr int W = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float *p) { return _mm512_loadu_ps(p); }
  static void store(float *p, Reg x) { _mm512_storeu_ps(p, x); }
  static Reg bcast(float x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static float hmax(Reg x) { return _mm512_reduce_max_ps(x); }
  static bool allAtMost(Reg x, Reg limit) {
    return _mm512_cmp_ps_mask(x, limit, _CMP_LE_OQ) == 0xffff;
  }
  static float hsum(Reg x) { return _mm512_reduce_add_ps(x); }
  /// dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block (K's keys into panel columns).
  static void transpose8(const float *src, int64_t lds, float *dst, int64_t ldd) {
    transpose8x8(src, lds, dst, ldd);
  }
  /// e^x for x <= 0 (the softmax's shifted scores; exp_avx512.h).
  static Reg exp(Reg x) { return expNonPositive512(x); }
};

} // namespace
} // namespace kiln::rt::sdpa

#include "sdpa_tile.h"

namespace kiln::rt::sdpa {

const Kernels &avx512Kernels() {
  static constexpr Kernels k = Tile<Avx512, 8, false>::kernels("avx512");
  return k;
}

} // namespace kiln::rt::sdpa
