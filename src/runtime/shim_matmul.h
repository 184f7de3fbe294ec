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

/// A constant B (k x n; trans_b: stored n x k) packed into the GEMV's 16-column panels, once
/// per (site, pointer, shape) and constant set; the GEMV and the AVX2 GEMM share it.
const float *packedWeightPanels(Runner &r, int64_t site, const float *b,
                                const kiln_matmul_params_v1 &p);

/// Whether weight GEMMs may take kiln's AVX2 GEMM: the run is capped at AVX2 or the CPU has
/// no AVX-512 (but AVX2 and FMA), and KILN_MATMUL_OWN_GEMM is not 0. Read once per process.
bool ownGemmRouteOn();

/// Whether kiln's AVX2 GEMM (gemm.h, shim_gemm.cpp) takes this GEMM (after batch folding):
/// the run is capped at AVX2 or the CPU has no AVX-512, B constant, one batch, A not
/// transposed, no full addend, an in-place residual only with alpha 1;
/// KILN_MATMUL_OWN_GEMM=0 turns it off.
bool ownGemmFits(const kiln_matmul_params_v1 &p, bool constantB, const float *residual,
                 const float *c);

/// The GEMM through kiln's AVX2 GEMM, B packed once per constant set.
int ownGemmForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                   const float *residual, float *c, const kiln_matmul_params_v1 &p);

/// Whether kiln_shim_matmul_multi_v1 runs through the AVX2 GEMM: the same rule, every B a
/// constant.
bool ownGemmMultiFits(Runner &r, const float *const *b, const kiln_matmul_multi_params_v1 &p);

/// C = A x [B_0 | B_1 | ...] + [bias_0 | ...] through the AVX2 GEMM, the concatenated B packed
/// once per constant set (keyed by every B's pointer).
int ownGemmMultiForward(Runner &r, int64_t site, const float *a, const float *const *b,
                        const float *const *bias, float *c, const kiln_matmul_multi_params_v1 &p);

} // namespace kiln::rt
