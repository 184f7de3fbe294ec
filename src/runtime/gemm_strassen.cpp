// One level of Strassen's algorithm for weight GEMMs (gemm_strassen.h).
//
// With A's rows split at h = ceil(m / 2) (an odd m's bottom half is one row short and reads as
// a zero row) and B's and C's columns and A's and B's K split in half, the seven products are
//   M1 = (A11 + A22)(B11 + B22)   -> C11, C22
//   M2 = (A21 + A22) B11          -> C21, -C22
//   M3 = A11 (B12 - B22)          -> C12, C22
//   M4 = A22 (B21 - B11)          -> C11, C21
//   M5 = (A11 + A12) B22          -> -C11, C12
//   M6 = (A21 - A11)(B11 + B12)   -> C22
//   M7 = (A12 - A22)(B21 + B22)   -> C11
// each h x n/2 x k/2; gemmAvx2Strassen runs all seven on each block of the quarters.
#include "gemm_strassen.h"

#include "aligned_vector.h"
#include "gemv.h"
#include "isa_cap.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kiln::rt {
namespace {

std::atomic<int> &forcedMode() {
  static std::atomic<int> mode{-1};
  return mode;
}

/// KILN_GEMM_STRASSEN: 0 off, 1 on with either tile; unset: on where the AVX2 tiles run (the
/// AVX-512 tiles' products are measured, docs/perf.md session 38, but not the default yet).
int strassenMode() {
  const int forced = forcedMode().load(std::memory_order_relaxed);
  if (forced >= 0) return forced;
  static const int mode = [] {
    const char *v = std::getenv("KILN_GEMM_STRASSEN");
    if (v && std::strcmp(v, "0") == 0) return 0;
    if (v && std::strcmp(v, "1") == 0) return 1;
    return 2;
  }();
  return mode;
}

size_t quarterFloats(int64_t n, int64_t k) {
  return gemvPackedFloats(n / 2, k / 2);
}

/// Row kk of B's quarter combination `which` (1-7, as the products are numbered) from row kk
/// of B's top half (top) and of its bottom half (bottom), each n2 + n2 floats.
void combinationRow(int which, const float *top, const float *bottom, int64_t n2, float *out) {
  const float *b11 = top, *b12 = top + n2, *b21 = bottom, *b22 = bottom + n2;
  auto sum = [&](const float *x, const float *y) {
    for (int64_t j = 0; j < n2; ++j)
      out[j] = x[j] + y[j];
  };
  auto difference = [&](const float *x, const float *y) {
    for (int64_t j = 0; j < n2; ++j)
      out[j] = x[j] - y[j];
  };
  switch (which) {
  case 1:
    return sum(b11, b22);
  case 2:
    return static_cast<void>(std::memcpy(out, b11, sizeof(float) * n2));
  case 3:
    return difference(b12, b22);
  case 4:
    return difference(b21, b11);
  case 5:
    return static_cast<void>(std::memcpy(out, b22, sizeof(float) * n2));
  case 6:
    return sum(b11, b12);
  default:
    return sum(b21, b22);
  }
}

/// Working memory kept per thread (runners may run in parallel) and grown to the largest call:
/// slot 0 a transposed B, 1 one of its combinations while packing (fresh pages for every
/// weight cost more to fault in and clear than the packing itself), 2 A's combinations.
std::vector<float> &threadBuffer(int slot, size_t floats) {
  thread_local std::vector<float> buffers[3];
  if (buffers[slot].size() < floats) buffers[slot].resize(floats);
  return buffers[slot];
}

/// A's combinations, h rows of k2 each: T1 = A11 + A22, T2 = A21 + A22, T5 = A11 + A12,
/// T6 = A21 - A11, T7 = A12 - A22 and, for an odd m, A22 with its missing last row as zeros.
struct ASums {
  float *t1, *t2, *t5, *t6, *t7, *a22;
};

void formASums(const GemmParams &g, const float *a, int64_t h, const ASums &s, int threads) {
  const int64_t k2 = g.k / 2, bottom = g.m - h;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < h; ++r)
    strassenASumsRowAvx2(a + r * g.lda, r < bottom ? a + (h + r) * g.lda : nullptr, k2,
                         s.t1 + r * k2, s.t2 + r * k2, s.t5 + r * k2, s.t6 + r * k2, s.t7 + r * k2,
                         s.a22 ? s.a22 + r * k2 : nullptr);
}

} // namespace

bool strassenFits(int64_t m, int64_t n, int64_t k) {
  const int mode = strassenMode(), bits = usableIsaBits();
  if (mode == 0 || bits < 256 || (mode == 2 && bits != 256)) return false;
  // Half GEMMs of 48+ rows and 384+ columns and K, one of N and K 1536+: on Zen 3 (bench/gemm,
  // B from memory, 1 / 2 threads) BERT's, GPT-2's and ViT's fc1, fc2 and Q/K/V 1.05-1.10x /
  // 1.01-1.07x the plain GEMM's speed; 128-1024 x 768 x 768 level or slower (its packed
  // weights 1.75x as large for nothing), 128 x 512 x 512 0.92-0.96x (docs/perf.md, sessions
  // 38-39). An odd M copies A's bottom right quarter with a zero row under it: ViT's fc2 (197 x
  // 768 x 3072) 1.05-1.07x since C is written after the last product (0.96-0.98x before).
  const bool shapeFits = m >= 96 && n >= 768 && k >= 768 && n + k >= 2304;
  return shapeFits && n % 32 == 0 && k % 2 == 0;
}

size_t strassenPackedFloats(int64_t n, int64_t k) {
  return 7 * quarterFloats(n, k);
}

void packStrassenWeights(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB,
                         float *packed) {
  const int64_t n2 = n / 2, k2 = k / 2;
  // B row-major (k x n): a stored transpose is turned around once, in 32 x 32 blocks.
  if (transB) {
    std::vector<float> &rowMajor = threadBuffer(0, static_cast<size_t>(k * n));
    for (int64_t j0 = 0; j0 < n; j0 += 32)
      for (int64_t q0 = 0; q0 < k; q0 += 32)
        for (int64_t j = j0; j < std::min(n, j0 + 32); ++j)
          for (int64_t q = q0; q < std::min(k, q0 + 32); ++q)
            rowMajor[q * n + j] = b[j * ldb + q];
    b = rowMajor.data();
    ldb = n;
  }
  // The seven combinations on the run's threads (a model's first run packs every weight).
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int which = 1; which <= 7; ++which) {
    std::vector<float> &plain = threadBuffer(1, static_cast<size_t>(k2 * n2));
    for (int64_t kk = 0; kk < k2; ++kk)
      combinationRow(which, b + kk * ldb, b + (kk + k2) * ldb, n2, plain.data() + kk * n2);
    packGemvWeights(plain.data(), n2, k2, n2, false, packed + (which - 1) * quarterFloats(n, k));
  }
}

void gemmStrassen(const GemmParams &g, const float *a, const float *packed, float *c,
                  StrassenTiles tiles) {
  const int64_t h = (g.m + 1) / 2, bottom = g.m - h, n2 = g.n / 2, k2 = g.k / 2;
  const bool odd = bottom < h;
  std::vector<float> &buf = threadBuffer(2, static_cast<size_t>((odd ? 6 : 5) * h * k2));
  const ASums s{buf.data(),
                buf.data() + h * k2,
                buf.data() + 2 * h * k2,
                buf.data() + 3 * h * k2,
                buf.data() + 4 * h * k2,
                odd ? buf.data() + 5 * h * k2 : nullptr};
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  formASums(g, a, h, s, threads);

  StrassenProducts sp;
  sp.h = h;
  sp.bottom = bottom;
  sp.n2 = n2;
  sp.k2 = k2;
  const float *a22 = odd ? s.a22 : a + h * g.lda + k2;
  const int64_t ld22 = odd ? k2 : g.lda;
  // Product j: its A operand, B's combination j + 1, its quarters (0 C11, 1 C12, 2 C21, 3 C22).
  struct Row {
    const float *a;
    int64_t lda;
    int q0, q1; // q1 < 0: one quarter
    bool neg0, neg1;
  };
  const Row rows[7] = {{s.t1, k2, 0, 3, false, false}, {s.t2, k2, 2, 3, false, true},
                       {a, g.lda, 1, 3, false, false}, {a22, ld22, 0, 2, false, false},
                       {s.t5, k2, 1, 0, false, true},  {s.t6, k2, 3, -1, false, false},
                       {s.t7, k2, 0, -1, false, false}};
  for (int j = 0; j < 7; ++j) {
    sp.a[j] = rows[j].a;
    sp.lda[j] = rows[j].lda;
    sp.b[j] = packed + j * quarterFloats(g.n, g.k);
    sp.quarter[j][0] = rows[j].q0;
    sp.quarter[j][1] = rows[j].q1;
    sp.negate[j][0] = rows[j].neg0;
    sp.negate[j][1] = rows[j].neg1;
    sp.count[j] = rows[j].q1 < 0 ? 1 : 2;
  }
  // Each quarter's first product writes it, the later ones add to it.
  bool written[4] = {false, false, false, false};
  for (int j = 0; j < 7; ++j)
    for (int d = 0; d < sp.count[j]; ++d) {
      sp.add[j][d] = written[sp.quarter[j][d]];
      written[sp.quarter[j][d]] = true;
    }
  if (tiles == StrassenTiles::Avx512 || (tiles == StrassenTiles::Auto && usableIsaBits() == 512))
    gemmAvx512Strassen(g, sp, c);
  else
    gemmAvx2Strassen(g, sp, c);
}

float *gemmThreadScratch(int threads, int64_t perThread) {
  thread_local AlignedVector<float> buffer;
  const int64_t slot = (perThread + 15) / 16 * 16; // whole cache lines per slot
  if (buffer.size() < static_cast<size_t>(threads * slot))
    buffer.resize(static_cast<size_t>(threads * slot));
  return buffer.data();
}

void forceStrassen(int mode) {
  forcedMode().store(mode, std::memory_order_relaxed);
}

} // namespace kiln::rt
