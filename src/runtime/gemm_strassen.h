// One level of Strassen's algorithm for weight GEMMs: C's four quarters from seven products of
// half the size instead of eight, 12.5% fewer FMAs. B is constant, so its seven quarter
// combinations (B11 + B22, B11, B12 - B22, B21 - B11, B22, B11 + B12, B21 + B22) are formed
// and packed once, as the Winograd convs' transformed weights are; per call only A's five
// combinations are formed, and the seven products run together on each block of C's quarters
// (gemm.h, gemmAvx2Strassen), which is written once with bias, residual and activation.
//
// Numerics: each output is still a sum of K products, but of operands formed by one addition
// or subtraction, so its rounding error is a few times float32's plain GEMM's (the tests bound
// it against float64); an Inf or NaN in A or B reaches twice the outputs it would in a plain
// GEMM (row r of the top half also feeds row r of the bottom half). KILN_GEMM_STRASSEN=0 turns
// it off.
#pragma once

#include "gemm.h"

#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// Whether an m x n x k weight GEMM runs as Strassen's products on this CPU: the route on,
/// n a multiple of 32 (each half whole panels) and k even, both large enough that the half
/// GEMMs run as fast per FMA as the whole one (measured, docs/perf.md session 38), and
/// enough rows.
bool strassenFits(int64_t m, int64_t n, int64_t k);

/// Floats of B's seven packed quarter combinations (n x k, n and k even).
size_t strassenPackedFloats(int64_t n, int64_t k);

/// B (k x n; transB: stored n x k, row stride ldb) as its seven quarter combinations, each
/// packed into 16-column panels (packGemvWeights) of k/2 x n/2.
void packStrassenWeights(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB,
                         float *packed);

/// Which tiles run the products: the widest the CPU and ONEDNN_MAX_CPU_ISA allow, or one
/// named (tests compare them; the CPU must run it).
enum class StrassenTiles { Auto, Avx2, Avx512 };

/// C = post(alpha * A * B + beta * bias + residual) from B's packed combinations, on the run's
/// OpenMP threads; the residual may be C itself (alpha 1).
void gemmStrassen(const GemmParams &g, const float *a, const float *packed, float *c,
                  StrassenTiles tiles = StrassenTiles::Auto);

/// Turns the route on (1: with either tile), off (0) or back to its default and
/// KILN_GEMM_STRASSEN (-1), for tests and the same-process benchmarks.
void forceStrassen(int mode);

} // namespace kiln::rt
