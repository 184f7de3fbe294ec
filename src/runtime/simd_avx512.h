// 16-float AVX-512 vectors for kiln's own kernels (include only from files compiled with
// -mavx512f -mavx2 -mfma): the operations the kernel templates (dwconv_kernel.h,
// gemv_kernel.h) take from their vector type V, with masked forms for a tail of n < W lanes.
#pragma once

#include <immintrin.h>

#include <cstdint>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace kiln::rt::simd {

struct Avx512 {
  using Reg = __m512;
  static constexpr int W = 16;
  static __mmask16 mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static Reg bcast(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float *p) { return _mm512_loadu_ps(p); }
  static Reg loadN(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store(float *p, Reg v) { _mm512_storeu_ps(p, v); }
  static void storeN(float *p, Reg v, int64_t n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
};

} // namespace kiln::rt::simd
