// The runtime GEMM's parameters (src/runtime/gemm.h) for the benches' plain case: row-major A
// (M x K), packed B, C (M x N) with bias, alpha = beta = 1 and no clamp (a post-op only where
// `post` asks for a GELU). Shared by kiln_gemm_bench and kiln_tile_ceiling.
#pragma once

#include "gemm.h"

#include <cstdint>
#include <limits>

namespace kiln::bench {

inline kiln::rt::GemmParams plainGemmParams(int64_t m, int64_t n, int64_t k, const float *bias,
                                            kiln::rt::GemmPost post) {
  kiln::rt::GemmParams p{};
  p.m = m;
  p.n = p.ldc = n;
  p.k = p.lda = k;
  p.alpha = p.beta = 1.f;
  p.bias = bias;
  p.post = post;
  p.lo = -std::numeric_limits<float>::infinity();
  p.hi = std::numeric_limits<float>::infinity();
  return p;
}

} // namespace kiln::bench
