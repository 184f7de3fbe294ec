// GEMV kernel for AVX-512 CPUs (compiled with -mavx512f -mavx2 -mfma; see gemv.h): a panel is
// one register; two panels a step (two streams of B, up to 8 accumulators). With B from memory
// two streams read it 1.5-2.4x faster than four on Zen 5 (bench/gemm/gemv_streams.cpp, m = 1, 2,
// 4 at 1-2 threads; MobileNetV2's classifier 0.15-0.19 -> 0.08-0.10 ms in the model, docs/perf.md
// session 51); four had been picked on Zen 4 (session 13).
#include "gemv_kernel.h"
#include "simd_avx512.h"

namespace kiln::rt {

const GemvKernel &gemvAvx512Kernel() {
  static const GemvKernel k{"avx512", &gemv_kernel::panels<simd::Avx512, 2, 2, 2, 2>};
  return k;
}

} // namespace kiln::rt
