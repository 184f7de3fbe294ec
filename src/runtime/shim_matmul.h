// Internal entry to the matmul shim, for other shims that run GEMMs (the conv chain).
#pragma once

#include "gemv.h"
#include "runner.h"

#include <kiln/shim.h>

#include <memory>

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

/// How a constant B is packed for kiln's own kernels: into the GEMV's 16-column panels, which
/// the GEMMs share (kPanelPacking, shim_gemv.cpp), or as Strassen's seven combinations of
/// them (kStrassenPacking, shim_gemm.cpp; gemm_strassen.h); `tag` tells their derived
/// weights apart.
struct WeightPacking {
  int64_t tag;
  size_t (*floats)(int64_t n, int64_t k);
  void (*pack)(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB, float *packed);
};
extern const WeightPacking kPanelPacking;
extern const WeightPacking kStrassenPacking;

/// B (k x n; transB: stored n x k, row stride ldb) packed as `how` says into a fresh weight
/// buffer (weight_memory.h).
std::shared_ptr<void> packWeights(const WeightPacking &how, const float *b, int64_t n, int64_t k,
                                  int64_t ldb, bool transB);

/// A constant B (k x n; trans_b: stored n x k) packed as `how` says, once per (site, pointer,
/// shape) and constant set, its file-backed pages then released (weight_store.h).
const float *packedWeights(Runner &r, int64_t site, const float *b, const kiln_matmul_params_v1 &p,
                           const WeightPacking &how = kPanelPacking);

/// The kiln_matmul_multi_v1 helpers its AVX2 GEMM route shares (shim_matmul_multi.cpp):
/// n[0] + ... + n[count - 1]; [bias_0 | bias_1 | ...] with zeros for absent ones; plain
/// row-major [k, N] = [B_0 | B_1 | ...]; the derived-weight key of a concatenated, packed B
/// (every B's pointer: a swap to the other constant set misses, an update of the active one
/// clears the derived cache), `tag` telling packings apart.
int64_t multiTotalN(const kiln_matmul_multi_params_v1 &p);
void concatMultiBias(const float *const *bias, const kiln_matmul_multi_params_v1 &p, float *out);
void concatMultiB(const float *const *b, const kiln_matmul_multi_params_v1 &p, float *out);
CacheKey multiPackedKey(int64_t site, int64_t tag, const float *const *b,
                        const kiln_matmul_multi_params_v1 &p);
/// Once a packed copy of every B is stored: drops their file-backed pages (each B is k x n[g],
/// contiguous), as the single-B packings do for theirs (weight_store.h).
void releaseMultiB(DnnlCache &cache, const float *const *b, const kiln_matmul_multi_params_v1 &p);

/// The GEMV's parameters for a weight GEMM (also the AVX2 GEMM's, gemm.h): strides, alpha,
/// beta with a row addend as bias, the residual laid out like C, ReLU/clip as clamp bounds.
GemvParams weightGemmParams(const kiln_matmul_params_v1 &p, const float *addend,
                            const float *residual);

/// Whether weight GEMMs may take kiln's GEMM: the CPU has AVX2 and FMA (the AVX-512 tile
/// where AVX-512 is allowed) and KILN_MATMUL_OWN_GEMM is not 0. Read once per process.
bool ownGemmRouteOn();

/// Whether kiln's GEMM (gemm.h, shim_gemm.cpp) takes this GEMM (after batch folding): the
/// route is on (ownGemmRouteOn), B constant, one batch, A not transposed, no full addend, an
/// in-place residual only with alpha 1, a shape the tile runs well.
bool ownGemmFits(const kiln_matmul_params_v1 &p, bool constantB, const float *residual,
                 const float *c);

/// The GEMM through kiln's AVX2 GEMM, B packed once per constant set.
int ownGemmForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                   const float *residual, float *c, const kiln_matmul_params_v1 &p);

/// Whether ownGemmForwardBlocks takes this GEMM: it fits ownGemmFits (no residual) on the
/// AVX2 tiles, takes no fast scheme and N is whole 16-column panels.
bool ownGemmBlocksFit(const kiln_matmul_params_v1 &p, bool constantB);

/// The GEMM through kiln's AVX2 GEMM, C written in blocks of one 16-column panel each,
/// `blockStride` floats apart (GemmParams::cBlockStride; p.ldc is ignored): the conv chain's
/// expansion for its depthwise conv (dwconv.h, DwConvParams::inBlock).
int ownGemmForwardBlocks(Runner &r, int64_t site, const float *a, const float *b,
                         const float *addend, float *c, const kiln_matmul_params_v1 &p,
                         int64_t blockStride);

/// The same GEMM on a B already packed into 16-column panels (packGemvWeights), for shims
/// that pack a weight of their own layout (conv_patch_gemm.cpp); p must satisfy ownGemmFits.
void packedGemm(const float *a, const float *packedB, const float *addend, const float *residual,
                float *c, const kiln_matmul_params_v1 &p);

/// Whether kiln_shim_matmul_multi_v1 runs through the AVX2 GEMM: the same rule, every B a
/// constant.
bool ownGemmMultiFits(Runner &r, const float *const *b, const kiln_matmul_multi_params_v1 &p);

/// C = A x [B_0 | B_1 | ...] + [bias_0 | ...] through the AVX2 GEMM, the concatenated B packed
/// once per constant set (keyed by every B's pointer).
int ownGemmMultiForward(Runner &r, int64_t site, const float *a, const float *const *b,
                        const float *const *bias, float *c, const kiln_matmul_multi_params_v1 &p);

} // namespace kiln::rt
