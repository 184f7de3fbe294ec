// An 8 x 8 float transpose in AVX registers, shared by the attention kernels of both ISA
// levels (keys into panel columns) and the bench GEMM's A strips. Include only from files
// compiled with -mavx2 or above.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace kiln::rt {

/// dst[c * ldd + r] = src[r * lds + c] for r, c in [0, 8). always_inline: includers are
/// compiled for different ISAs, and one shared out-of-line copy (which the linker would keep
/// from any of them) was also left with its loops rolled, through the stack.
[[gnu::always_inline]] inline void transpose8x8(const float *src, int64_t lds, float *dst,
                                                int64_t ldd) {
  __m256 r[8], t[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    r[i] = _mm256_loadu_ps(src + i * lds);
#pragma GCC unroll 8
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

} // namespace kiln::rt
