// GELU on 8 floats for the AVX2 GEMM epilogues (the runtime's GEMM, the bench's own GEMM).
// Include only from files compiled with -mavx2 -mfma.
#pragma once

#include "gelu_rational.h"
#include "simd_avx2.h"

namespace kiln::rt {

[[gnu::always_inline]] inline __m256 geluErf256(__m256 x) {
  return geluErfRational<simd::Avx2>(x);
}

[[gnu::always_inline]] inline __m256 geluTanh256(__m256 x) {
  return geluTanhRational<simd::Avx2>(x);
}

} // namespace kiln::rt
