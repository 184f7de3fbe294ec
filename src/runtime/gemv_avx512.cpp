// GEMV kernel for AVX-512 CPUs (compiled with -mavx512f -mavx2 -mfma; see gemv.h): a panel is
// one register; four panels a step (four streams of B, up to 16 accumulators).
#include "gemv_kernel.h"
#include "simd_avx512.h"

namespace kiln::rt {

const GemvKernel &gemvAvx512Kernel() {
  static const GemvKernel k{"avx512", &gemv_kernel::panels<simd::Avx512, 4, 4, 4, 4>};
  return k;
}

} // namespace kiln::rt
