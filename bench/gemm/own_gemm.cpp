// B packing and ISA dispatch of the benchmark's own GEMM (own_gemm.h); the tiles are in
// own_gemm_avx512.cpp and own_gemm_avx2.cpp.
#include "own_gemm.h"

#include "cpu_features.h"
#include "isa_cap.h"

#include <algorithm>
#include <cstring>

namespace kiln::bench::gemm {

int64_t packedFloats(int64_t k, int64_t n) {
  return (n + kPanelCols - 1) / kPanelCols * kPanelCols * k;
}

void packB(const float *b, int64_t ldb, bool transposed, int64_t k, int64_t n, float *out) {
  const int64_t panels = (n + kPanelCols - 1) / kPanelCols;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t col0 = p * kPanelCols, cols = std::min(kPanelCols, n - col0);
    float *panel = out + p * k * kPanelCols;
    for (int64_t kk = 0; kk < k; ++kk) {
      float *dst = panel + kk * kPanelCols;
      if (!transposed) {
        std::memcpy(dst, b + kk * ldb + col0, sizeof(float) * cols);
      } else {
        for (int64_t j = 0; j < cols; ++j)
          dst[j] = b[(col0 + j) * ldb + kk];
      }
      std::fill(dst + cols, dst + kPanelCols, 0.f);
    }
  }
}

namespace {

bool hasAvx512() {
#if defined(__x86_64__)
  // Once: run() asks on every call, and the cap is an environment read.
  static const bool on =
      cpu::missingFeatures("avx512f,avx2,fma").empty() && rt::isaCapBits() >= 512;
  return on;
#else
  return false;
#endif
}

} // namespace

bool available() {
#if defined(__x86_64__)
  static const bool on = cpu::missingFeatures("avx2,fma").empty() && rt::isaCapBits() >= 256;
  return on;
#else
  return false;
#endif
}

const char *isaName() {
  return hasAvx512() ? "avx512" : "avx2";
}

void run(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
         float *c, int64_t ldc, const Epilogue &ep) {
#if defined(__x86_64__)
  if (hasAvx512())
    runAvx512(m, n, k, a, lda, bPacked, c, ldc, ep);
  else
    runAvx2(m, n, k, a, lda, bPacked, c, ldc, ep);
#else
  (void)m, (void)n, (void)k, (void)a, (void)lda, (void)bPacked, (void)c, (void)ldc, (void)ep;
#endif
}

} // namespace kiln::bench::gemm
