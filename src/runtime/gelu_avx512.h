// GELU on 16 floats for the AVX-512 GEMM epilogues (the runtime's GEMM, the bench's own GEMM).
// Include only from files compiled with -mavx512f.
#pragma once

#include "gelu_rational.h"
#include "simd_avx512.h"

namespace kiln::rt {

[[gnu::always_inline]] inline __m512 geluErf512(__m512 x) {
  return geluErfRational<simd::Avx512>(x);
}

[[gnu::always_inline]] inline __m512 geluTanh512(__m512 x) {
  return geluTanhRational<simd::Avx512>(x);
}

} // namespace kiln::rt
