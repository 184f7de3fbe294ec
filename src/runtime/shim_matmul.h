// Internal entry to the matmul shim, for other shims that run GEMMs (the conv chain).
#pragma once

#include "runner.h"

#include <kiln/shim.h>

namespace kiln::rt {

/// C = post_op(alpha * op(A) * op(B) + beta * addend + residual), as kiln_shim_matmul_v1/v2;
/// level is the shim level of the caller's entry point (1: matmul_v1, 7: matmul_v2). A
/// constant B is packed once per (site, pointer) and kept with the derived weights.
int matmulForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                  const float *residual, float *c, const kiln_matmul_params_v1 &given, int level);

/// Whether kiln's GEMV (shim_gemv.cpp) takes this GEMM (after batch folding): 1-4 rows, a
/// constant B, no transposed A, no full addend, a ReLU/clip or no post-op;
/// KILN_MATMUL_GEMV=0 turns it off.
bool gemvFits(const kiln_matmul_params_v1 &p, bool constantB);

/// The GEMM through kiln's GEMV, its B packed once per constant set.
int gemvForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                const float *residual, float *c, const kiln_matmul_params_v1 &p);

} // namespace kiln::rt
