// kiln's own Winograd F(4x4, 3x3) and F(2x2, 3x3) convolutions for channels-last float32
// activations.
//
// For 3x3, stride 1, dilation 1, ungrouped 2-D convs it replaces oneDNN's direct kernel where
// measured faster (docs/perf.md, "Winograd F(4x4, 3x3) for 3x3 convolutions", session 23 for
// F(2x2, 3x3)): weights are transformed once per constant set (cached like oneDNN's reordered
// weights, dropped when constants change), then per run: input tiles -> 36 (or 16) GEMMs
// [tiles x C] . [C x K] -> output tiles with bias, residual and ReLU/clip fused. F(4x4) does
// 4x fewer multiplies than a direct conv, F(2x2) 2.25x, but F(4x4)'s weights are 4x the
// direct ones (F(2x2)'s 1.8x) and each is reused once per output tile: on small images the
// GEMMs stream the weights from memory for few tiles, and the smaller tile wins. The kernels exist
// per ISA level (conv_winograd_avx512.cpp, conv_winograd_avx2.cpp over conv_winograd_impl.h),
// picked from CPUID. Known difference from a direct conv: a non-finite input value may reach every
// output of the 4x4 tiles whose 6x6 input window holds it (as NaN, where the transforms subtract
// infinities), not only the outputs whose 3x3 window holds it. Finite inputs agree to ~1e-6
// relative.
#pragma once

#include "runner.h"

#include <kiln/shim.h>

#include <cstdint>

namespace kiln::rt::winograd {

/// One call's geometry and buffers, shared by every kernel set. Activations are NHWC,
/// U is the transformed weight set of transformWeights() for this set's panel width.
struct Problem {
  int64_t N, H, W, C, K, OH, OW, padT, padL;
  int64_t tilesH, tilesW; // output tiles of TM x TM: ceil(OH / TM), ceil(OW / TM)
  int64_t chunk;          // tiles transformed and multiplied per pass (bounds V and M)
  const float *x, *U, *bias, *residual;
  float *y;
  bool activate; // clamp to [lo, hi] after bias and residual (ReLU: lo 0, hi +inf)
  float lo, hi;
  float *V, *M;    // scratch: A^2 x chunk x C and A^2 x chunk x K floats (A = TM + 2)
  bool splitTiles; // each thread its own tiles through every phase (Split::Tiles)
};

/// The kernels of one ISA level.
struct Kernels {
  const char *name;
  int panel; // K columns per GEMM panel: U is laid out [A^2][K / panel][C][panel]
  void (*run4)(const Problem &p); // F(4x4, 3x3)
  void (*run2)(const Problem &p); // F(2x2, 3x3)
};

const Kernels &avx512Kernels(); // needs avx512f, avx2, fma
const Kernels &avx2Kernels();   // needs avx2, fma

enum class Isa { Auto, Avx512, Avx2 };
/// Forces one kernel set (tests, benches); false, changing nothing, when this CPU lacks it.
bool forceIsa(Isa isa);
/// Turns the Winograd path on or off for this process (benches' A/B). The default comes from
/// KILN_CONV_WINOGRAD: "0" off, "avx2" the AVX2 kernels, anything else or unset: on
/// (ONEDNN_MAX_CPU_ISA below AVX-512 also picks the AVX2 kernels; below AVX2, off).
void setEnabled(bool on);

/// The output tile size a conv would take: 4 or 2 (outputTile; tests and benches may force
/// one). KILN_CONV_WINOGRAD_TILE=2 or 4 forces one too.
enum class Tile { Auto, F2, F4 };
void forceTile(Tile tile);
int outputTile(const int64_t *yDims);

/// How a call shares its work among the run's threads: each thread its own output tiles
/// through every phase, or a share of each phase (input transform, GEMMs, output transform)
/// between barriers; Auto picks by tiles per thread. KILN_WINOGRAD_SPLIT=tiles or =phases
/// forces one (A/Bs); tests force one with forceSplit.
enum class Split { Auto, Tiles, Phases };
void forceSplit(Split split);

/// True when this conv (dims as the shim gets them: N,C,H,W / K,C,3,3 / N,K,OH,OW) should
/// take the Winograd path: the shape is one it computes and one where it was measured faster.
bool wanted(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
            const kiln_conv_params_v1 &p);

/// y = post(conv(x, w) + bias + residual), x / y / residual channels-last. Caches the
/// transformed weights per (site, w) when w lies in the runner's constants.
int forward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
            const int64_t *wDims, const float *bias, const float *residual, float *y,
            const int64_t *yDims, const kiln_conv_params_v1 &p);

/// Winograd-domain weights U[A^2][K / panel][C][panel] of OIHW 3x3 weights w for output tiles
/// of tm (4 or 2; A = tm + 2), computed in double, stored as float. Exposed for tests.
void transformWeights(const float *w, int64_t K, int64_t C, int panel, int tm, float *U);

} // namespace kiln::rt::winograd
