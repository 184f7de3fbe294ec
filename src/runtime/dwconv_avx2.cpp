// Depthwise 3x3 row kernel for AVX2 + FMA CPUs (compiled with -mavx2 -mfma; see dwconv.h):
// 8 channels per vector, masked loads for a channel tail.
#include "dwconv_kernel.h"

#include "simd_avx2.h"

namespace kiln::rt {
using simd::Avx2;

const DwRowKernel &dwAvx2Kernel() {
  static const DwRowKernel k{"avx2", Avx2::W, &dw::rows<Avx2>};
  return k;
}

} // namespace kiln::rt
