// The direct conv's rows on AVX2 + FMA (compiled with -mavx2 -mfma; conv_direct_kernel.h):
// 6 pixels x 16 channels in 12 ymm accumulators, the AVX2 GEMM tile's shape (16 registers:
// the accumulators, two weight vectors and a broadcast).
#include "conv_direct_kernel.h"

#include "simd_avx2.h"

namespace kiln::rt {

const DirectConvKernel &directConvAvx2Kernel() {
  static const DirectConvKernel k{2 * simd::Avx2::W, 6, &direct::rows<simd::Avx2, 6>};
  return k;
}

} // namespace kiln::rt
