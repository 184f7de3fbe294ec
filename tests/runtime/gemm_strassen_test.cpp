// The fast GEMM schemes for weight GEMMs (gemm_strassen.h: Strassen's <2,2,2> and the rank-15
// <2,3,3>) against float64: the kernel on even and odd M (an odd M's bottom blocks end a row
// early), N and K around the 16-column panels and the AVX2 K blocks (K / 2 or K / 3 up to 768
// in one block, deeper in even blocks), B stored transposed or not, alpha, bias with beta, a
// residual beside C and in C, every activation, 1 and 2 threads; the matmul shims' route to it
// (single and Q/K/V GEMMs, the rule, the scheme each shape takes, the packed combinations
// following constant updates). ctest runs these again under ONEDNN_MAX_CPU_ISA=AVX2
// (runtime.own_gemm_avx2), where AVX-512 CPUs take the route too.
//
// Tolerance: each product multiplies operands formed by a few additions (Strassen: |x| <= 2
// for the tests' values in [-1, 1], rank 15: A's up to 4 and B's up to 3) and each output sums
// up to four (six) products, so float32's rounding can grow past a plain GEMM's in the worst
// case. The sums of random signs here stayed within the plain GEMM's own bound of
// weight_gemm_cases.h for both schemes (kScale = 1 passed when rank 15 was added); kScale = 4
// leaves room for other data, and a wrong sign, block or row is off by O(1).
#include "gemm.h"
#include "gemm_strassen.h"
#include "gemv.h"
#include "isa_cap.h"
#include "shim_matmul.h"
#include "test_util.h"
#include "weight_gemm_cases.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <string>

namespace {

using namespace kiln::test::weight_gemm;

constexpr double kScale = 4.0;

struct NamedTiles {
  const char *name;
  kiln::rt::StrassenTiles tiles;
};

/// The tiles this CPU runs (not capped: named directly).
std::vector<NamedTiles> tileSets() {
  std::vector<NamedTiles> v;
  if (kiln::rt::gemmAvx2Supported()) v.push_back({"avx2", kiln::rt::StrassenTiles::Avx2});
  if (kiln::rt::cpuIsaBits() >= 512) v.push_back({"avx512", kiln::rt::StrassenTiles::Avx512});
  return v;
}

void checkKernelOn(const NamedTiles &tiles, const Gemm &t, bool inPlace, std::mt19937 &rng,
                   const std::string &what) {
  kiln_matmul_params_v1 p = params(t);
  if (inPlace) p.alpha = 1.f;
  Data d = makeData(t, p, rng);
  std::vector<float> packed(kiln::rt::strassenPackedFloats(t.n, t.k));
  kiln::rt::packStrassenWeights(d.b.data(), t.n, t.k, p.ldb, t.transB, packed.data());
  std::vector<float> c(t.m * p.ldc, -7.f);
  kiln::rt::GemmParams g = kernelParams(t, p, d);
  if (inPlace) residualInC(t, p, d, c, g);
  const std::vector<float> a = d.a;
  kiln::rt::gemmStrassen(g, d.a.data(), packed.data(), c.data(), tiles.tiles);
  EXPECT_EQ(d.a, a) << what << ": A changed";
  expectClose(c, reference(t, p, d), t, p.ldc,
              std::string(tiles.name) + " " + what + " " + t.describe(), kScale);
}

bool rank15Divides(const Gemm &t) {
  return t.n % 48 == 0 && t.k % 3 == 0;
}

/// gemmStrassen on fresh data (C holding the residual when inPlace) against float64, on each
/// tile set, with each scheme that divides t.
void checkKernel(const Gemm &t, bool inPlace, std::mt19937 &rng, const std::string &what) {
  for (int scheme : {222, 233}) {
    if (scheme == 233 && !rank15Divides(t)) continue;
    if (scheme == 222 && (t.n % 32 != 0 || t.k % 2 != 0)) continue;
    kiln::rt::forceFastScheme(scheme);
    EXPECT_EQ(kiln::rt::fastSchemeFor(t.n, t.k), scheme);
    for (const NamedTiles &tiles : tileSets())
      checkKernelOn(tiles, t, inPlace, rng, what + " scheme " + std::to_string(scheme));
  }
  kiln::rt::forceFastScheme(0);
}

TEST(OwnGemmStrassen, KernelMatchesFloat64) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int saved = omp_get_max_threads();
  std::mt19937 rng(38);
  const int32_t posts[] = {KILN_POST_NONE, KILN_POST_RELU, KILN_POST_CLIP, KILN_POST_GELU_ERF,
                           KILN_POST_GELU_TANH};
  struct Shape {
    int64_t n, k;
  };
  // Strassen's: K / 2 of 1, 17, 384, 385, 801 (one block on AVX2; AVX-512: blocks of its own
  // depth and a rest) and 1601 (AVX2: blocks of 801 and 800); N / 2 of one panel and of three.
  // Rank 15: K / 3 of 1, 12, 257, 802 (one block) and 1538 (blocks of 769), N / 3 of one panel
  // and of two.
  const Shape shapes[] = {{32, 2}, {96, 34}, {32, 768}, {96, 770},  {32, 1602}, {32, 3202},
                          {48, 3}, {96, 36}, {48, 771}, {96, 2406}, {48, 4614}};
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int64_t m : {2, 3, 12, 13, 25, 97, 130})
      for (const Shape &s : shapes) {
        Gemm t{m, s.n, s.k, rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0, posts[rng() % 5]};
        checkKernel(t, false, rng, "threads " + std::to_string(threads));
      }
  }
  omp_set_num_threads(saved);
}

// BERT-base's fc2 (K = 3072: K / 3 in one block on AVX2), a ViT-like odd M with
// GELU (its 17 strips of half rows in one group on AVX2) and 26 strips of half rows (two groups
// of 13 there, 8 panels an item).
TEST(OwnGemmStrassen, KernelAtTransformerShapes) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(39);
  checkKernel(Gemm{128, 96, 3072, false, true, true, KILN_POST_NONE}, false, rng, "fc2-like");
  checkKernel(Gemm{197, 768, 258, true, true, false, KILN_POST_GELU_ERF}, false, rng, "odd M");
  for (int64_t k : {770, 771}) // Strassen's, rank 15's
    checkKernel(Gemm{301, 96, k, false, false, true, KILN_POST_RELU}, false, rng, "26 strips");
}

// Where the rows take several strip groups, each group's rows of A's operands are formed as
// its first item starts, by whichever thread gets there (gemm_avx2_strassen.cpp): 1001 rows
// (4-7 strip groups of the 501-row halves, by thread count and scheme; the bottom half a row
// short) at 1, 2 and 3 threads.
TEST(OwnGemmStrassen, KernelFormsEachStripGroupsRows) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(47);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (int64_t k : {770, 771}) // Strassen's, rank 15's
      checkKernel(Gemm{1001, 96, k, true, false, true, KILN_POST_GELU_TANH}, false, rng,
                  "threads " + std::to_string(threads));
  }
  omp_set_num_threads(saved);
}

TEST(OwnGemmStrassen, KernelResidualInPlace) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(40);
  for (int64_t m : {14, 15})
    for (int64_t k : {64, 1600, 96, 1602})
      checkKernel(Gemm{m, k % 3 == 0 ? 96 : 64, k, m == 15, true, true, KILN_POST_RELU}, true, rng,
                  "in place");
}

// The route's rule: transformer GEMMs, not small ones, not odd N halves; by default on AVX2
// tiles only, with either when forced on (KILN_GEMM_STRASSEN=1); off when forced off (=0); which
// scheme each shape takes.
TEST(OwnGemmStrassen, RouteRule) {
  if (!kiln::rt::ownGemmRouteOn()) GTEST_SKIP() << "no AVX2, or KILN_MATMUL_OWN_GEMM=0";
  const bool avx2Tiles = kiln::rt::usableIsaBits() == 256;
  kiln::rt::forceStrassen(-1);
  if (std::getenv("KILN_GEMM_STRASSEN")) GTEST_SKIP() << "KILN_GEMM_STRASSEN set";
  EXPECT_EQ(kiln::rt::strassenFits(128, 3072, 768), avx2Tiles);
  EXPECT_EQ(kiln::rt::strassenFits(128, 768, 3072), avx2Tiles);
  EXPECT_EQ(kiln::rt::strassenFits(197, 2304, 768), avx2Tiles);
  EXPECT_EQ(kiln::rt::strassenFits(1024, 2304, 768), avx2Tiles);
  EXPECT_EQ(kiln::rt::strassenFits(1024, 768, 768), avx2Tiles); // attention output
  EXPECT_FALSE(kiln::rt::strassenFits(1024, 768, 512));         // K / 2 too small
  EXPECT_FALSE(kiln::rt::strassenFits(64, 3072, 768));          // too few rows
  EXPECT_FALSE(kiln::rt::strassenFits(128, 512, 512));          // halves too small
  EXPECT_FALSE(kiln::rt::strassenFits(128, 784, 768));          // N / 2 not whole panels
  EXPECT_FALSE(kiln::rt::strassenFits(128, 768, 769));          // odd K
  EXPECT_EQ(kiln::rt::strassenFits(197, 3072, 768), avx2Tiles); // odd M (ViT's fc1)
  EXPECT_EQ(kiln::rt::strassenFits(197, 768, 3072), avx2Tiles); // odd M, K deeper than N (fc2)
  // Rank 15 by default where N / 3 is whole panels and K divides by 3 (the transformers').
  if (!std::getenv("KILN_GEMM_FAST")) {
    EXPECT_EQ(kiln::rt::fastSchemeFor(3072, 768), 233);
    EXPECT_EQ(kiln::rt::fastSchemeFor(2304, 768), 233);
    EXPECT_EQ(kiln::rt::fastSchemeFor(768, 3072), 233);
    EXPECT_EQ(kiln::rt::fastSchemeFor(800, 1538), 222); // N / 3 not whole panels
    EXPECT_EQ(kiln::rt::fastSchemeFor(1536, 770), 222); // K not a multiple of 3
    EXPECT_EQ(kiln::rt::fastSchemeFor(768, 768), 222);  // thirds too small
  }
  kiln::rt::forceStrassen(1);
  EXPECT_TRUE(kiln::rt::strassenFits(128, 3072, 768));
  EXPECT_FALSE(kiln::rt::strassenFits(128, 512, 512));
  kiln::rt::forceStrassen(0);
  EXPECT_FALSE(kiln::rt::strassenFits(128, 3072, 768));
  kiln::rt::forceStrassen(-1);
}

/// The shim's C for t with the route forced on or off.
std::vector<float> shimRun(const Gemm &t, const kiln_matmul_params_v1 &p, const Data &d,
                           int strassen) {
  kiln::rt::forceStrassen(strassen);
  kiln::rt::Runner r;
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(d.b.data()), d.b.size() * 4);
  std::vector<float> c;
  EXPECT_EQ(runShim(r, t, p, d, c), KILN_OK) << kiln_rt_last_error();
  kiln::rt::forceStrassen(-1);
  return c;
}

TEST(OwnGemmStrassen, ShimMatchesFloat64) {
  if (!kiln::rt::ownGemmRouteOn()) GTEST_SKIP() << "no AVX2, or KILN_MATMUL_OWN_GEMM=0";
  std::mt19937 rng(41);
  for (const Gemm &t : {Gemm{96, 1536, 768, true, true, false, KILN_POST_GELU_ERF},
                        Gemm{100, 800, 1538, false, true, true, KILN_POST_NONE}}) {
    const kiln_matmul_params_v1 p = params(t);
    const Data d = makeData(t, p, rng);
    kiln::rt::forceStrassen(1); // AVX-512 tiles too
    ASSERT_TRUE(kiln::rt::strassenFits(t.m, t.n, t.k)) << t.describe();
    const std::vector<float> strassen = shimRun(t, p, d, 1), plain = shimRun(t, p, d, 0);
    expectClose(strassen, reference(t, p, d), t, p.ldc, "strassen " + t.describe(), kScale);
    expectClose(plain, reference(t, p, d), t, p.ldc, "plain " + t.describe());
    EXPECT_NE(strassen, plain) << "the route did not run (bit-identical to the plain GEMM)";
  }
}

TEST(OwnGemmStrassen, PackedCombinationsFollowConstantUpdates) {
  if (!kiln::rt::ownGemmRouteOn()) GTEST_SKIP() << "no AVX2, or KILN_MATMUL_OWN_GEMM=0";
  kiln::rt::forceStrassen(1);
  expectPanelsFollowConstantUpdates(Gemm{96, 1536, 768, true, true, true, KILN_POST_RELU}, 42,
                                    kScale);
  kiln::rt::forceStrassen(-1);
}

// Q/K/V as one GEMM over [B_0 | B_1 | B_2] (N = 1536 in all) through the route, a bias on one.
TEST(OwnGemmStrassen, MultiShimMatchesFloat64) {
  if (!kiln::rt::ownGemmRouteOn()) GTEST_SKIP() << "no AVX2, or KILN_MATMUL_OWN_GEMM=0";
  kiln::rt::forceStrassen(1);
  expectMultiShimMatches(
      MultiCase{97, 768, 770, {512, 512, 512}, {true, false, false}}, 43, kScale,
      [](kiln::rt::Runner &, const float *const *, const kiln_matmul_multi_params_v1 &p) {
        return kiln::rt::strassenFits(p.m, p.n[0] + p.n[1] + p.n[2], p.k);
      });
  kiln::rt::forceStrassen(-1);
}

} // namespace
