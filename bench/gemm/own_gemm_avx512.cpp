// The own GEMM's AVX-512 micro-kernel and driver (compiled with -mavx512f -mavx2 -mfma;
// own_gemm.h describes the layouts). The threads first copy A into 8-row strips; then work
// items (a block of rows x one B panel) are split among them, rows outermost, and each
// item walks its K blocks, the strips of its rows under each, so one B block (kc x 48)
// stays in L1 while the strips pass. The next B block is prefetched during the second half
// of the strips (measured: +6-8 points of peak with B streaming from memory).
#include "own_gemm.h"

#include "exp_avx512.h"
#include "transpose8_avx.h"

#include <immintrin.h>
#include <omp.h>

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_ps()
// temporaries once inlined (GCC bug 105593); nothing here reads uninitialised data.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace kiln::bench::gemm {
namespace {

constexpr int MR = static_cast<int>(kRowTile);
constexpr int NV = static_cast<int>(kPanelCols / 16); // zmm per tile row

using kiln::rt::expNonPositive512;

/// 0.5 x (1 + erf(x / sqrt 2)). With z = |x| / sqrt 2, 1 - erf(z) = q = t P(t) e^(-z^2),
/// t = 1 / (1 + 0.3275911 z) (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); for x < 0 the
/// factor is q itself, so large negative inputs lose no precision to cancellation.
__m512 geluErf(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678f));
  const __m512 t = _mm512_div_ps(
      _mm512_set1_ps(1.f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
  __m512 p = _mm512_set1_ps(1.061405429f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
  const __m512 q =
      _mm512_mul_ps(_mm512_mul_ps(p, t),
                    expNonPositive512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z))));
  const __mmask16 positive = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 factor = _mm512_mask_sub_ps(q, positive, _mm512_set1_ps(2.f), q);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

/// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3): with e = e^(-2|u|), 1 + tanh(u) is
/// 2 / (1 + e) for u >= 0 and 2e / (1 + e) below.
__m512 geluTanh(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u =
      _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x), _mm512_set1_ps(0.79788456f));
  const __m512 e = expNonPositive512(_mm512_mul_ps(_mm512_abs_ps(u), _mm512_set1_ps(-2.f)));
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(2.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 factor = _mm512_mask_mul_ps(inv, negative, inv, e);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

__m512 finish(__m512 v, const Epilogue &ep, const float *bias, const float *res, __mmask16 m) {
  if (ep.alpha != 1.f) v = _mm512_mul_ps(v, _mm512_set1_ps(ep.alpha));
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
  switch (ep.post) {
  case Post::None:
    return v;
  case Post::Relu:
    return _mm512_max_ps(v, _mm512_setzero_ps());
  case Post::Clip:
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(ep.clipMin)), _mm512_set1_ps(ep.clipMax));
  case Post::GeluErf:
    return geluErf(v);
  case Post::GeluTanh:
    return geluTanh(v);
  }
  return v;
}

struct TileArgs {
  const float *ap;    // the tile's packed strip of A (kc x MR), at column pc
  const float *bp;    // packed B block: kc x 48
  const float *nextB; // a B block the next tiles read: one line per k-step goes to L2
  int64_t nextLines;  // how many of its lines this tile prefetches (<= kc)
  int64_t kc;
  float *c; // the tile's top-left element
  int64_t ldc;
  int rows; // valid rows (<= MR)
  __mmask16 cols[NV];
  bool loadC, last;
  int64_t row0, col0; // the tile's position in C (bias and residual)
};

/// One MR x 48 tile of C over one K block, accumulators in registers.
void tile(const TileArgs &t, const Epilogue &ep) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j)
      acc[i][j] = _mm512_setzero_ps();
  const float *ap = t.ap, *bp = t.bp;
  for (int64_t kk = 0; kk < t.kc; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16),
                 b2 = _mm512_loadu_ps(bp + 32);
    if (kk < t.nextLines)
      _mm_prefetch(reinterpret_cast<const char *>(t.nextB + 16 * kk), _MM_HINT_T1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
    }
    ap += MR;
    bp += kPanelCols;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= t.rows) break;
    float *out = t.c + i * t.ldc;
    const float *res =
        t.last && ep.residual ? ep.residual + (t.row0 + i) * ep.ldr + t.col0 : nullptr;
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[i][j];
      if (t.loadC) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(t.cols[j], out + 16 * j));
      if (t.last)
        v = finish(v, ep, ep.bias ? ep.bias + t.col0 + 16 * j : nullptr,
                   res ? res + 16 * j : nullptr, t.cols[j]);
      _mm512_mask_storeu_ps(out + 16 * j, t.cols[j], v);
    }
  }
}

/// Rows [0, rows) of A (k columns, row stride lda) into a strip of k x MR floats (rows past
/// `rows` are zero): 8 x 8 blocks transposed in registers, the k tail one by one.
void packStrip(const float *a, int64_t lda, int64_t rows, int64_t k, float *out) {
  int64_t kk = 0;
  if (rows == MR) {
    for (; kk + 8 <= k; kk += 8)
      kiln::rt::transpose8x8(a + kk, lda, out + kk * MR, MR);
  }
  for (; kk < k; ++kk)
    for (int64_t i = 0; i < MR; ++i)
      out[kk * MR + i] = i < rows ? a[i * lda + kk] : 0.f;
}

int64_t blockM() {
  static const int64_t mc = [] {
    const char *v = std::getenv("KILN_GEMM_MC");
    const long n = v ? std::strtol(v, nullptr, 10) : 0;
    return n >= MR ? static_cast<int64_t>(n) : int64_t{256};
  }();
  return mc;
}

int64_t blockK() {
  static const int64_t kc = [] {
    const char *v = std::getenv("KILN_GEMM_KC");
    const long n = v ? std::strtol(v, nullptr, 10) : 0;
    return n >= 16 ? static_cast<int64_t>(n) : int64_t{256};
  }();
  return kc;
}

} // namespace

void runAvx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *bPacked,
               float *c, int64_t ldc, const Epilogue &ep) {
  if (m <= 0 || n <= 0) return;
  const int64_t panels = (n + kPanelCols - 1) / kPanelCols, strips = (m + MR - 1) / MR;
  const int64_t kcMax = std::min(blockK(), std::max<int64_t>(k, 1));
  const int threads = std::max(1, omp_get_max_threads());
  // Work items are (block of rows, panel), row block outermost: a thread keeps its rows of A
  // in L2 while it walks the panels. Blocks of kRowBlock rows, smaller when there would be
  // too few items to share among the threads.
  int64_t perGroup = std::max<int64_t>(1, blockM() / MR);
  while (perGroup > 1 && ((strips + perGroup - 1) / perGroup) * panels < 4 * threads)
    perGroup = (perGroup + 1) / 2;
  const int64_t groups = (strips + perGroup - 1) / perGroup;
  perGroup = (strips + groups - 1) / groups; // even groups: no thread left with a stub
  thread_local std::vector<float> packedA;
  if (packedA.size() < static_cast<size_t>(strips * MR * k)) packedA.resize(strips * MR * k);
  float *ap = packedA.data();
#pragma omp parallel num_threads(static_cast <int>(std::min <int64_t>(threads, strips * panels)))
  {
#pragma omp for schedule(static)
    for (int64_t s = 0; s < strips; ++s)
      packStrip(a + s * MR * lda, lda, std::min<int64_t>(MR, m - s * MR), k, ap + s * MR * k);
#pragma omp for schedule(static)
    for (int64_t item = 0; item < panels * groups; ++item) {
      const int64_t g = item / panels, p = item % panels;
      const int64_t s0 = g * perGroup, s1 = std::min(strips, s0 + perGroup);
      TileArgs t;
      t.col0 = p * kPanelCols;
      t.ldc = ldc;
      const int64_t valid = std::min<int64_t>(kPanelCols, n - t.col0);
      for (int j = 0; j < NV; ++j) {
        const int64_t v = std::clamp<int64_t>(valid - 16 * j, 0, 16);
        t.cols[j] = static_cast<__mmask16>((1u << v) - 1u);
      }
      // K blocks outermost: the B block (kc x 48) stays in L1 while the strips pass, and
      // this panel's column of C tiles (m x 48) stays in L1/L2 between the blocks.
      for (int64_t pc = 0; pc < std::max<int64_t>(k, 1); pc += kcMax) {
        t.kc = std::min(kcMax, k - pc);
        t.bp = bPacked + p * k * kPanelCols + pc * kPanelCols;
        t.loadC = pc > 0 || ep.accumulate;
        t.last = pc + t.kc >= k;
        // The block after this one (the next K block, else the next panel's first) is
        // prefetched during the second half of this block's strips, a share per strip.
        const float *next = t.last ? (p + 1 < panels ? bPacked + (p + 1) * k * kPanelCols : nullptr)
                                   : t.bp + t.kc * kPanelCols;
        const int64_t nextKc = t.last ? std::min(kcMax, k) : std::min(kcMax, k - pc - t.kc);
        const int64_t lines = next ? nextKc * kPanelCols / 16 : 0;
        const int64_t late = (s1 - s0) / 2;
        const int64_t perStrip = (lines + (s1 - s0 - late) - 1) / (s1 - s0 - late);
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t done = s - s0 < late ? lines : (s - s0 - late) * perStrip;
          t.nextB = next ? next + 16 * std::min(done, lines) : nullptr;
          t.nextLines = std::clamp<int64_t>(lines - done, 0, std::min(perStrip, t.kc));
          t.ap = ap + s * MR * k + pc * MR;
          t.row0 = s * MR;
          t.c = c + t.row0 * ldc + t.col0;
          t.rows = static_cast<int>(std::min<int64_t>(MR, m - t.row0));
          tile(t, ep);
        }
      }
    }
  }
}

} // namespace kiln::bench::gemm
