// Fast GEMM schemes for weight GEMMs (gemm_strassen.h): one level of Strassen's <2,2,2> (seven
// products of half the size) or of a <2,3,3> scheme (fifteen products of A's halves split in
// three along K times B's thirds: 15 of 18 multiplications). Both are tables here: each
// product's combination of A's blocks, of B's blocks and the C blocks it goes into. Strassen's:
//   M1 = (A11 + A22)(B11 + B22)   -> C11, C22
//   M2 = (A21 + A22) B11          -> C21, -C22
//   M3 = A11 (B12 - B22)          -> C12, C22
//   M4 = A22 (B21 - B11)          -> C11, C21
//   M5 = (A11 + A12) B22          -> -C11, C12
//   M6 = (A21 - A11)(B11 + B12)   -> C22
//   M7 = (A12 - A22)(B21 + B22)   -> C11
// The <2,3,3> one is AlphaTensor's rank-15 decomposition with coefficients in {-1, 0, 1}
// (Fawzi et al., Nature 2022). A's rows split at h = ceil(m / 2); an odd m's bottom blocks are
// one row short and read as a zero row. gemmAvx2Strassen / gemmAvx512Strassen run all the
// products on each block of C.
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

/// A scheme: A is 2 x kParts blocks, B kParts x cols, C 2 x cols (row-major block numbers);
/// product j multiplies sum_i a[j][i] A_i by sum_i b[j][i] B_i and adds c[j][q] times it to C_q.
struct FastScheme {
  int kParts, cols, products;
  signed char a[kMaxFastProducts][6], b[kMaxFastProducts][9], c[kMaxFastProducts][6];
};

// Strassen's <2,2,2>: blocks 0 = 11, 1 = 12, 2 = 21, 3 = 22.
constexpr FastScheme kStrassen{2,
                               2,
                               7,
                               {{1, 0, 0, 1},
                                {0, 0, 1, 1},
                                {1, 0, 0, 0},
                                {0, 0, 0, 1},
                                {1, 1, 0, 0},
                                {-1, 0, 1, 0},
                                {0, 1, 0, -1}},
                               {{1, 0, 0, 1},
                                {1, 0, 0, 0},
                                {0, 1, 0, -1},
                                {-1, 0, 1, 0},
                                {0, 0, 0, 1},
                                {1, 1, 0, 0},
                                {0, 0, 1, 1}},
                               {{1, 0, 0, 1},
                                {0, 0, 1, -1},
                                {0, 1, 0, 1},
                                {1, 0, 1, 0},
                                {-1, 1, 0, 0},
                                {0, 0, 0, 1},
                                {1, 0, 0, 0}}};

// <2,3,3> in 15 products: A blocks 11 12 13 21 22 23, B 11 12 13 21 22 23 31 32 33, C as A.
constexpr FastScheme kRank15{3,
                             3,
                             15,
                             {{0, 0, 0, 0, 0, 1},
                              {1, 0, 0, 0, 0, -1},
                              {1, 0, 0, 0, 0, 0},
                              {1, 0, -1, 0, 0, 0},
                              {0, 0, 1, 0, 0, -1},
                              {0, 1, 0, 0, 0, 0},
                              {0, 1, -1, 0, 0, 1},
                              {1, 0, 0, -1, 1, 0},
                              {0, 0, 0, 1, -1, 0},
                              {0, 1, -1, 0, -1, 1},
                              {0, 1, -1, 0, 0, 0},
                              {0, 0, 0, 0, 1, 0},
                              {1, -1, 0, -1, 1, 0},
                              {0, 0, 0, 1, 0, -1},
                              {1, 0, 0, -1, 0, 0}},
                             {{1, 0, 0, 0, 0, 0, 1, 1, 0},
                              {1, 0, 0, 0, 0, 0, 0, 0, 1},
                              {0, 1, -1, 0, 0, 0, 0, 0, -1},
                              {0, 0, 0, 0, 0, 0, 0, 0, 1},
                              {0, 0, 0, 1, 0, 0, 1, 0, -1},
                              {0, 0, 0, 0, 1, -1, 0, 1, 0},
                              {0, 0, 0, 1, 0, 0, 0, -1, 0},
                              {0, 1, 0, 0, 0, 1, 0, 0, 0},
                              {0, 1, 0, 0, 0, 0, 0, 0, 0},
                              {0, 0, 0, 1, 0, 0, 0, 0, 0},
                              {0, 0, 0, 0, 0, 0, 0, 1, 0},
                              {0, 1, 0, 1, 1, 0, 0, 0, 0},
                              {0, 0, 0, 0, 0, 1, 0, 0, 0},
                              {1, 0, 0, 0, 0, 0, 0, 0, 0},
                              {1, 0, -1, 0, 0, -1, 0, 0, 0}},
                             {{1, 0, 0, 1, 0, 0},
                              {1, 0, 0, 0, 0, -1},
                              {0, 0, -1, 0, 0, -1},
                              {-1, 0, -1, 0, 0, 0},
                              {1, 0, 0, 0, 0, 0},
                              {0, 1, 0, 0, 0, 0},
                              {1, 0, 0, 1, -1, 0},
                              {0, 1, 1, 0, 0, 1},
                              {0, 1, 1, 0, 1, 1},
                              {0, 0, 0, -1, 1, 0},
                              {1, -1, 0, 1, -1, 0},
                              {0, 0, 0, 0, 1, 0},
                              {0, -1, -1, 0, 0, 0},
                              {0, 0, 0, 1, 0, 1},
                              {0, 0, 0, 0, 0, 1}}};

constexpr bool termsFit(const FastScheme &s) {
  for (int j = 0; j < s.products; ++j) {
    int terms = 0;
    for (int i = 0; i < 2 * s.kParts; ++i)
      terms += s.a[j][i] != 0;
    if (terms > kMaxFastTerms) return false;
  }
  return true;
}
static_assert(termsFit(kStrassen) && termsFit(kRank15), "an A combination past kMaxFastTerms");

std::atomic<int> &forcedScheme() {
  static std::atomic<int> scheme{0};
  return scheme;
}

/// Whether rank 15 is on: unless KILN_GEMM_FAST is "222" (Strassen's everywhere, for A/Bs).
bool rank15Allowed() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_GEMM_FAST");
    return !(v && std::strcmp(v, "222") == 0);
  }();
  return on;
}

// Rank 15 where N's thirds are whole 16-column panels, K divides by three and one of them is
// 1536+: on Zen 3 BERT-base b1's fc1, fc2 and Q/K/V took 2-3% less time than with Strassen's;
// 768 x 768 weights (a third 256 both ways) ran 0.93-0.98x Strassen's speed (bench/gemm;
// docs/perf.md, session 42). A test's forced 233 takes it wherever it divides.
const FastScheme &schemeFor(int64_t n, int64_t k) {
  const bool divides = n % 48 == 0 && k % 3 == 0;
  switch (forcedScheme().load(std::memory_order_relaxed)) {
  case 222:
    return kStrassen;
  case 233:
    return divides ? kRank15 : kStrassen;
  default:
    return rank15Allowed() && divides && n + k >= 2304 ? kRank15 : kStrassen;
  }
}

size_t partFloats(const FastScheme &s, int64_t n, int64_t k) {
  return gemvPackedFloats(n / s.cols, k / s.kParts);
}

/// Working memory kept per thread (runners may run in parallel) and grown to the largest call:
/// slot 0 a transposed B, 1 one of its combinations while packing (fresh pages for every
/// weight cost more to fault in and clear than the packing itself), 2 A's combinations.
std::vector<float> &threadBuffer(int slot, size_t floats) {
  thread_local std::vector<float> buffers[3];
  if (buffers[slot].size() < floats) buffers[slot].resize(floats);
  return buffers[slot];
}

/// Whether product j's A operand is one of A's blocks as it stands (read in place): a single
/// block with sign +1, and not a bottom block an odd m leaves a row short.
bool aInPlace(const FastScheme &s, int j, bool odd, int &blockIndex) {
  int terms = 0;
  for (int i = 0; i < 2 * s.kParts; ++i)
    if (s.a[j][i] != 0) {
      ++terms;
      blockIndex = i;
    }
  return terms == 1 && s.a[j][blockIndex] == 1 && !(odd && blockIndex >= s.kParts);
}

/// The A operands that are combinations (or an odd m's short bottom blocks): rows [r0, r1) of
/// h rows of kp each, into `out` (one after another, in product order), on `threads` threads.
void formASums(const FastScheme &s, const GemmParams &g, const float *a, int64_t h,
               const int *formed, int count, float *out, int64_t r0, int64_t r1, int threads) {
  const int64_t kp = g.k / s.kParts, bottom = g.m - h;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = r0; r < r1; ++r)
    for (int f = 0; f < count; ++f) {
      const int j = formed[f];
      FastTerm terms[kMaxFastTerms];
      int n = 0;
      for (int i = 0; i < 2 * s.kParts; ++i) {
        if (s.a[j][i] == 0) continue;
        const bool top = i < s.kParts;
        const int64_t col = (top ? i : i - s.kParts) * kp;
        const float *row =
            top ? a + r * g.lda + col : (r < bottom ? a + (h + r) * g.lda + col : nullptr);
        terms[n++] = FastTerm{row, static_cast<float>(s.a[j][i])};
      }
      fastASumRowAvx2(terms, n, kp, out + (f * h + r) * kp);
    }
}

/// What formASums needs, for StrassenProducts::formRows.
struct FormSource {
  const FastScheme *scheme;
  const GemmParams *g;
  const float *a;
  int64_t h;
  const int *formed;
  int count;
  float *out;
};

void formSourceRows(const void *context, int64_t r0, int64_t r1, int threads) {
  const auto &f = *static_cast<const FormSource *>(context);
  formASums(*f.scheme, *f.g, f.a, f.h, f.formed, f.count, f.out, r0, r1, threads);
}

} // namespace

bool strassenFits(int64_t m, int64_t n, int64_t k) {
  const int mode = strassenMode(), bits = usableIsaBits();
  if (mode == 0 || bits < 256 || (mode == 2 && bits != 256)) return false;
  // Half GEMMs of 48+ rows and 384+ columns and K: on Zen 3 (bench/gemm, B from memory, 1 / 2
  // threads) BERT's, GPT-2's and ViT's fc1, fc2 and Q/K/V 1.05-1.10x / 1.01-1.07x the plain
  // GEMM's speed (docs/perf.md, sessions 38-39), their attention output (128, 197 and 1024 x 768
  // x 768) 1.03-1.05x / 1.03-1.04x best (session 42; level before C was written after the last
  // product), 128 x 512 x 512 0.92-0.96x. An odd M copies A's bottom blocks with a zero row
  // under them: ViT's fc2 (197 x 768 x 3072) 1.05-1.07x since C is written after the last
  // product (0.96-0.98x before).
  const bool shapeFits = m >= 96 && n >= 768 && k >= 768;
  return shapeFits && n % 32 == 0 && k % 2 == 0;
}

size_t strassenPackedFloats(int64_t n, int64_t k) {
  const FastScheme &s = schemeFor(n, k);
  return s.products * partFloats(s, n, k);
}

void packStrassenWeights(const float *b, int64_t n, int64_t k, int64_t ldb, bool transB,
                         float *packed) {
  const FastScheme &s = schemeFor(n, k);
  const int64_t np = n / s.cols, kp = k / s.kParts;
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
  // The combinations on the run's threads (a model's first run packs every weight).
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int j = 0; j < s.products; ++j) {
    std::vector<float> &plain = threadBuffer(1, static_cast<size_t>(kp * np));
    std::fill(plain.begin(), plain.begin() + kp * np, 0.f);
    for (int i = 0; i < s.kParts * s.cols; ++i) {
      const float sign = s.b[j][i];
      if (sign == 0.f) continue;
      const float *block = b + i / s.cols * kp * ldb + i % s.cols * np;
      for (int64_t kk = 0; kk < kp; ++kk)
        for (int64_t jj = 0; jj < np; ++jj)
          plain[kk * np + jj] += sign * block[kk * ldb + jj];
    }
    packGemvWeights(plain.data(), np, kp, np, false, packed + j * partFloats(s, n, k));
  }
}

void gemmStrassen(const GemmParams &g, const float *a, const float *packed, float *c,
                  StrassenTiles tiles) {
  const FastScheme &s = schemeFor(g.n, g.k);
  const int64_t h = (g.m + 1) / 2, kp = g.k / s.kParts;
  const bool odd = g.m - h < h;
  StrassenProducts sp;
  sp.h = h;
  sp.bottom = g.m - h;
  sp.np = g.n / s.cols;
  sp.kp = kp;
  sp.cols = s.cols;
  sp.products = s.products;
  // A's operands: blocks read in place, the rest formed once per call.
  int formed[kMaxFastProducts], count = 0;
  for (int j = 0; j < s.products; ++j) {
    int i = 0;
    if (aInPlace(s, j, odd, i)) {
      sp.a[j] = a + (i < s.kParts ? 0 : h * g.lda) + i % s.kParts * kp;
      sp.lda[j] = g.lda;
    } else {
      formed[count++] = j;
    }
  }
  std::vector<float> &buf = threadBuffer(2, static_cast<size_t>(count * h * kp));
  for (int f = 0; f < count; ++f) {
    sp.a[formed[f]] = buf.data() + f * h * kp;
    sp.lda[formed[f]] = kp;
  }
  const FormSource source{&s, &g, a, h, formed, count, buf.data()};
  // Each block's first product writes it, the later ones add to it.
  bool written[6] = {false, false, false, false, false, false};
  for (int j = 0; j < s.products; ++j) {
    sp.b[j] = packed + j * partFloats(s, g.n, g.k);
    sp.count[j] = 0;
    for (int q = 0; q < 2 * s.cols; ++q) {
      if (s.c[j][q] == 0) continue;
      const int d = sp.count[j]++;
      sp.cBlock[j][d] = q;
      sp.negate[j][d] = s.c[j][q] < 0;
      sp.add[j][d] = written[q];
      written[q] = true;
    }
  }
  if (tiles == StrassenTiles::Avx512 || (tiles == StrassenTiles::Auto && usableIsaBits() == 512)) {
    formSourceRows(&source, 0, h, omp_in_parallel() ? 1 : omp_get_max_threads());
    return gemmAvx512Strassen(g, sp, c);
  }
  sp.formRows = formSourceRows;
  sp.formContext = &source;
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

void forceFastScheme(int scheme) {
  forcedScheme().store(scheme, std::memory_order_relaxed);
}

int fastSchemeFor(int64_t n, int64_t k) {
  return &schemeFor(n, k) == &kRank15 ? 233 : 222;
}

} // namespace kiln::rt
