// An experiment kept with the GEMM benchmark (docs/perf.md, "kiln's own GEMM"): an f32 GEMM
// for a constant B, C = post(alpha * A * B + bias + residual), as the MatMul shim would need.
// It was wired into the shims and measured against oneDNN 2.6 in the models; it did not win
// (1-thread parity, slower at 2 threads and at M = 1024), so the runtime does not use it.
//
// B is packed once into column panels of kPanelCols: panel p holds columns [p * 48, p * 48 +
// 48) as K rows of 48 contiguous floats (zero past N), so the micro-kernel streams one panel
// with unit stride. A is copied per call into K-major strips of kRowTile rows. The AVX-512
// micro-kernel keeps an 8 x 48 tile of C in 24 zmm registers (3 loads of B and 8 broadcasts
// of A per 24 FMAs), with the epilogue (bias, residual, activation) applied to the tile
// while it is still in registers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::bench::gemm {

constexpr int64_t kPanelCols = 48; // columns of B per packed panel (3 zmm)
constexpr int64_t kRowTile = 8;    // rows of A per micro-kernel tile

enum class Post : int { None, Relu, Clip, GeluErf, GeluTanh };

struct Epilogue {
  float alpha = 1.f;
  const float *bias = nullptr;     // n floats added after alpha (already scaled), or null
  const float *residual = nullptr; // m x n, leading dimension ldr, added after the bias
  int64_t ldr = 0;
  bool accumulate = false; // C's prior contents are added to A * B (alpha must be 1)
  Post post = Post::None;
  float clipMin = 0.f, clipMax = 0.f;
};

/// Floats of a packed B with k rows and n columns.
int64_t packedFloats(int64_t k, int64_t n);

/// Packs B (k x n, row stride ldb; or, when transposed, stored n x k with row stride ldb)
/// into `out` (packedFloats(k, n) floats).
void packB(const float *b, int64_t ldb, bool transposed, int64_t k, int64_t n, float *out);

/// Whether this CPU runs the packed GEMM (AVX2 with FMA at least).
bool available();

/// The build run() takes: "avx512", or "avx2" on CPUs without AVX-512F or when
/// ONEDNN_MAX_CPU_ISA caps the run at AVX2 (runtime/isa_cap.h, as oneDNN's own GEMM is).
const char *isaName();

/// C (m x n, ldc) = epilogue(A (m x k, lda, row-major) * packed B), on the OpenMP threads
/// of the caller. Callers check available() first. KILN_GEMM_KC and KILN_GEMM_MC override
/// the K block (256) and the row block (256) for tuning.
void run(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
         float *c, int64_t ldc, const Epilogue &ep);

/// The implementations behind run() (own_gemm_avx512.cpp, own_gemm_avx2.cpp).
void runAvx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
               float *c, int64_t ldc, const Epilogue &ep);
void runAvx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
             float *c, int64_t ldc, const Epilogue &ep);

} // namespace kiln::bench::gemm
