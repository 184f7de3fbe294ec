// GEMV kernel for AVX2 + FMA CPUs (compiled with -mavx2 -mfma; see gemv.h): a panel is two
// registers; two panels a step for one or two rows, one for more (16 registers in all).
#include "gemv_kernel.h"
#include "simd_avx2.h"

namespace kiln::rt {

const GemvKernel &gemvAvx2Kernel() {
  static const GemvKernel k{"avx2", &gemv_kernel::panels<simd::Avx2, 2, 2, 1, 1>};
  return k;
}

} // namespace kiln::rt
