// The Winograd conv kernels for AVX2 + FMA CPUs (compiled with -mavx2 -mfma; see
// conv_winograd.h). 8 floats per vector; the GEMM micro-kernel keeps 6 rows x 2 vectors of
// accumulators, leaving 4 of the 16 ymm registers for the weights and the broadcast, so a
// weight panel is 16 columns wide.
#include "conv_winograd_impl.h"

#include <immintrin.h>

namespace kiln::rt::winograd {
namespace {

struct Avx2 {
  using Reg = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kPanelVectors = 2;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float *p) { return _mm256_loadu_ps(p); }
  static void store(float *p, Reg x) { _mm256_storeu_ps(p, x); }
  static Reg bcast(float x) { return _mm256_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg fnma(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
};

} // namespace

const Kernels &avx2Kernels() {
  static const Kernels k{"avx2", Impl<Avx2, 4>::KB, &Impl<Avx2, 4>::run, &Impl<Avx2, 2>::run};
  return k;
}

} // namespace kiln::rt::winograd
