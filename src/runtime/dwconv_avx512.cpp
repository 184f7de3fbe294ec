// Depthwise 3x3 row kernel for AVX-512 CPUs (compiled with -mavx512f -mavx2 -mfma; see
// dwconv.h): 16 channels per vector, masked loads for a channel tail.
#include "dwconv_kernel.h"

#include "simd_avx512.h"

namespace kiln::rt {
using simd::Avx512;

const DwRowKernel &dwAvx512Kernel() {
  static const DwRowKernel k{"avx512", Avx512::W, &dw::rows<Avx512>};
  return k;
}

} // namespace kiln::rt
