// Fast GEMM schemes for weight GEMMs: C's blocks from fewer products of smaller GEMMs than the
// plain method's. Strassen's <2,2,2> (seven products of half the size instead of eight, 12.5%
// fewer FMAs) and a <2,3,3> scheme of rank 15 (A's halves in thirds along K, B's and C's
// columns in thirds: fifteen products instead of eighteen, 16.7% fewer). B is constant, so its
// combinations are formed and packed once, as the Winograd convs' transformed weights are (1.75x
// and 1.67x B's floats); per call only A's combinations are formed, and the products run
// together on each block of C (gemm.h, gemmAvx2Strassen), which is written once with bias,
// residual and activation.
//
// Numerics: each output is still a sum of K products, but of operands formed by a few
// additions or subtractions, so its rounding error is a few times float32's plain GEMM's (the
// tests bound it against float64); an Inf or NaN in A or B reaches more outputs than it would
// in a plain GEMM (row r of the top half also feeds row r of the bottom half).
// KILN_GEMM_STRASSEN=0 turns the route off, KILN_GEMM_FAST=222 keeps it to Strassen's scheme.
#pragma once

#include "gemm.h"

#include <cstddef>
#include <cstdint>

namespace kiln::rt {

/// Whether an m x n x k weight GEMM runs as a fast scheme's products on this CPU: the route on,
/// n a multiple of 32 (each half whole panels) and k even, both large enough that the part
/// GEMMs run as fast per FMA as the whole one (measured, docs/perf.md sessions 38 and 42), and
/// enough rows.
bool strassenFits(int64_t m, int64_t n, int64_t k);

/// Floats of B's packed combinations for its scheme (n x k; fastSchemeFor).
size_t strassenPackedFloats(int64_t n, int64_t k);

/// B (k x n; transB: stored n x k, row stride ldb) as its scheme's combinations, each packed
/// into 16-column panels (packGemvWeights) of k/2 x n/2 (222) or k/3 x n/3 (233).
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

/// The scheme an n x k weight takes: 233 (rank 15: N in thirds of whole 16-column panels, K
/// in thirds, n + k 2304+) or 222 (Strassen's: N in halves of whole panels, K in halves).
int fastSchemeFor(int64_t n, int64_t k);
/// 222: Strassen's for every shape; 233: rank 15 wherever it divides (small shapes too); 0:
/// the default (rank 15 where it divides and n + k is 2304+, unless KILN_GEMM_FAST=222). For
/// tests: set it before packing.
void forceFastScheme(int scheme);

} // namespace kiln::rt
