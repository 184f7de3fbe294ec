// The Winograd conv kernels for AVX-512 CPUs (compiled with -mavx512f -mavx2 -mfma; see
// conv_winograd.h). 16 floats per vector; the GEMM micro-kernel keeps 6 rows x 4 vectors
// of accumulators (24 of the 32 zmm registers), so a weight panel is 64 columns wide.
#include "conv_winograd_impl.h"

#include <immintrin.h>

namespace kiln::rt::winograd {
namespace {

struct Avx512 {
  using Reg = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kPanelVectors = 4;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float *p) { return _mm512_loadu_ps(p); }
  static void store(float *p, Reg x) { _mm512_storeu_ps(p, x); }
  static Reg bcast(float x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg fnma(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  // The masked forms are the same vmaxps/vminps; g++ 12 warns about the unmasked ones'
  // undefined pass-through register (-Wmaybe-uninitialized, a false positive).
  static Reg max(Reg a, Reg b) { return _mm512_mask_max_ps(a, 0xffff, a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_mask_min_ps(a, 0xffff, a, b); }
};

} // namespace

const Kernels &avx512Kernels() {
  static const Kernels k{"avx512", Impl<Avx512, 4>::KB, &Impl<Avx512, 4>::run,
                         &Impl<Avx512, 2>::run};
  return k;
}

} // namespace kiln::rt::winograd
