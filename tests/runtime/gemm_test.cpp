// kiln's GEMM (gemm.h) against float64: each kernel this CPU runs (the AVX2 one on any AVX2
// CPU, the AVX-512 one where there is AVX-512F) on row counts around the 6-, 8- and 9-row tiles,
// columns around the 16-column panels and the 1-3 panel tiles, K around the blocks (one
// block up to 768, then blocks of 256 for AVX2; K over 768 split evenly for AVX-512), A rows
// 4 KiB apart, alpha, bias with beta, residual beside C and in place, clamp and both GELUs, 1
// and 2 threads; and the matmul shims' route to it (shim_gemm.cpp): the rule, single and multi
// (Q/K/V) GEMMs, and the packed panels following constant updates. ctest runs the route's
// tests again under ONEDNN_MAX_CPU_ISA=AVX2 (runtime.own_gemm_avx2), so an AVX-512 machine
// checks the AVX2 route too.
#include "gemm.h"
#include "gemv.h"
#include "isa_cap.h"
#include "shim_matmul.h"
#include "test_util.h"
#include "weight_gemm_cases.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

namespace {

using namespace kiln::test::weight_gemm;

std::vector<Gemm> kernelCases() {
  std::vector<Gemm> v;
  std::mt19937 rng(21);
  const int32_t posts[] = {KILN_POST_NONE, KILN_POST_RELU, KILN_POST_CLIP, KILN_POST_GELU_ERF,
                           KILN_POST_GELU_TANH};
  // Every remainder of 6 and 8; AVX2's strips of 5 and 6 rows from 20 rows on (20 = 4 x 5,
  // 50 = 5 x 6 + 4 x 5, 64 = 9 x 6 + 2 x 5) and the shared last two below (13, 19).
  for (int64_t m : {3, 5, 6, 7, 8, 10, 12, 13, 19, 20, 25, 50, 64, 197})
    for (int64_t n : {1, 16, 17, 24, 40, 100}) // 24, 40: the AVX2 4 x 24 tail tile
      for (int64_t k : {1, 9, 16, 24, 32, 256, 257, 600, 768, 769, 1600}) {
        Gemm t{m, n, k, rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0, posts[rng() % 5]};
        v.push_back(t);
      }
  // AVX-512 strips of 9 rows then 8: 9 + 9 + 8 over whole panel groups and an odd K in three
  // blocks; seven of 9 and one of 8 with a last group of one panel; 128 rows as eight of 9
  // and seven of 8.
  for (Gemm t : {Gemm{26, 480, 1601, false, true, true, KILN_POST_GELU_ERF},
                 Gemm{71, 400, 257, true, true, true, KILN_POST_RELU},
                 Gemm{128, 144, 769, false, true, false, KILN_POST_GELU_TANH}})
    v.push_back(t);
  return v;
}

using Kernel = void (*)(const kiln::rt::GemmParams &, const float *, const float *, float *);

struct NamedKernel {
  const char *name;
  Kernel run;
};

/// The kernels this CPU runs (not capped: the kernels are called directly).
std::vector<NamedKernel> kernels() {
  std::vector<NamedKernel> v;
  if (kiln::rt::gemmAvx2Supported()) v.push_back({"avx2", kiln::rt::gemmAvx2});
  if (kiln::rt::cpuIsaBits() >= 512) v.push_back({"avx512", kiln::rt::gemmAvx512});
  return v;
}

/// One kernel call on fresh data against the float64 reference (padding columns must stay).
void checkKernel(const NamedKernel &kernel, const Gemm &t, const kiln_matmul_params_v1 &p,
                 std::mt19937 &rng, int threads) {
  Data d = makeData(t, p, rng);
  std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
  kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, t.transB, packed.data());
  std::vector<float> c(t.m * p.ldc, -7.f);
  kernel.run(kernelParams(t, p, d), d.a.data(), packed.data(), c.data());
  expectClose(c, reference(t, p, d), t, p.ldc,
              std::string(kernel.name) + " " + t.describe() + " threads " +
                  std::to_string(threads));
}

TEST(OwnGemm, KernelMatchesFloat64) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int saved = omp_get_max_threads();
  std::mt19937 rng(5);
  for (const NamedKernel &kernel : kernels())
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (const Gemm &t : kernelCases())
        checkKernel(kernel, t, params(t), rng, threads);
    }
  omp_set_num_threads(saved);
}

// K a multiple of 8 up to 256 with alpha 1, at most a bias, a residual and a clamp: the lean
// AVX2 tile (k-steps fully unrolled at 16, 24 and 32, eight at a time otherwise) takes the
// whole strips and panels, the general tile the rest (a partial panel, last strips that share
// rows).
TEST(OwnGemm, LeanTileMatchesFloat64) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int saved = omp_get_max_threads();
  std::mt19937 rng(17);
  const int32_t posts[] = {KILN_POST_NONE, KILN_POST_RELU, KILN_POST_CLIP};
  for (const NamedKernel &kernel : kernels())
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (int64_t m : {5, 6, 13, 128, 200})
        for (int64_t n : {16, 40, 96})
          for (int64_t k : {16, 24, 32, 40, 136, 256}) {
            Gemm t{m, n, k, rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0, posts[rng() % 3]};
            kiln_matmul_params_v1 p = params(t);
            p.alpha = 1.f;
            checkKernel(kernel, t, p, rng, threads);
          }
    }
  omp_set_num_threads(saved);
}

// C in blocks of one 16-column panel (GemmParams::cBlockStride), as a conv chain's expansion
// writes it for the depthwise conv: the lean tile's whole strips, the general tile's last
// strips and K over 256, 1 and 2 threads. The floats between blocks must stay.
TEST(OwnGemm, Avx2WritesPanelBlocks) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int saved = omp_get_max_threads();
  std::mt19937 rng(19);
  const int32_t posts[] = {KILN_POST_NONE, KILN_POST_RELU, KILN_POST_CLIP};
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int64_t m : {5, 13, 64, 200})
      for (int64_t n : {16, 48, 96})
        for (int64_t k : {16, 24, 40, 136, 288}) {
          Gemm t{m, n, k, rng() % 2 == 0, rng() % 2 == 0, false, posts[rng() % 3]};
          kiln_matmul_params_v1 p = params(t);
          p.alpha = k == 288 ? 1.5f : 1.f; // the lean tile takes alpha 1 only
          Data d = makeData(t, p, rng);
          std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
          kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, t.transB, packed.data());
          kiln::rt::GemmParams g = kernelParams(t, p, d);
          g.ldc = 16;
          g.cBlockStride = m * 16 + 24; // a gap after each block
          ASSERT_TRUE(kiln::rt::gemmAvx2WritesBlocks(g)) << t.describe();
          std::vector<float> c(n / 16 * g.cBlockStride, -7.f);
          kiln::rt::gemmAvx2(g, d.a.data(), packed.data(), c.data());
          const std::vector<double> want = reference(t, p, d);
          const std::string what = t.describe() + " threads " + std::to_string(threads);
          for (int64_t j = 0; j < n / 16; ++j) {
            const float *block = c.data() + j * g.cBlockStride;
            for (int64_t i = 0; i < m; ++i)
              for (int64_t col = 0; col < 16; ++col)
                ASSERT_NEAR(block[i * 16 + col], want[i * n + j * 16 + col], 2e-6 * k + 1e-5)
                    << what << " at " << i << "," << j * 16 + col;
            for (int64_t gap = m * 16; gap < g.cBlockStride; ++gap)
              ASSERT_EQ(block[gap], -7.f) << what << ": gap after block " << j << " written";
          }
        }
  }
  omp_set_num_threads(saved);
}

// A residual that is C itself: C holds it on entry and every K block adds to it (alpha 1).
TEST(OwnGemm, KernelResidualInPlace) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(8);
  for (const NamedKernel &kernel : kernels())
    for (int64_t k : {5, 24, 256, 700, 1600}) {
      Gemm t{k == 700 ? 26 : 20, k == 24 ? 40 : 33, k, false, true, true, KILN_POST_RELU};
      kiln_matmul_params_v1 p = params(t);
      p.alpha = 1.f;
      Data d = makeData(t, p, rng);
      std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
      kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, false, packed.data());
      std::vector<float> c;
      kiln::rt::GemmParams g = kernelParams(t, p, d);
      residualInC(t, p, d, c, g);
      kernel.run(g, d.a.data(), packed.data(), c.data());
      expectClose(c, reference(t, p, d), t, p.ldc,
                  std::string(kernel.name) + " in place, k " + std::to_string(k));
    }
}

// A whose rows are a multiple of 4 KiB apart (rows that share L1 sets; a layout the kernels
// may copy or pad), at K equal to the stride and short of it, 1 and 2 threads: A unchanged.
TEST(OwnGemm, KernelRowsFourKiBApart) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  const int saved = omp_get_max_threads();
  std::mt19937 rng(13);
  struct Case {
    int64_t m, n, k, lda;
  };
  for (const NamedKernel &kernel : kernels())
    for (int threads : {1, 2})
      for (const Case &c : {Case{37, 144, 1024, 1024}, Case{128, 200, 700, 1024},
                            Case{13, 768, 3072, 3072}, Case{7, 128, 2048, 4096}}) {
        omp_set_num_threads(threads);
        Gemm t{c.m, c.n, c.k, false, true, true, KILN_POST_GELU_ERF};
        kiln_matmul_params_v1 p = params(t);
        p.lda = c.lda;
        Data d = makeData(t, p, rng);
        std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
        kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, false, packed.data());
        std::vector<float> out(t.m * p.ldc, -7.f);
        const std::vector<float> a = d.a;
        kernel.run(kernelParams(t, p, d), d.a.data(), packed.data(), out.data());
        EXPECT_EQ(d.a, a) << "A changed";
        expectClose(out, reference(t, p, d), t, p.ldc,
                    std::string(kernel.name) + " " + t.describe() + " lda " +
                        std::to_string(c.lda) + " threads " + std::to_string(threads));
      }
  omp_set_num_threads(saved);
}

// Runs the AVX-512 GEMM on case t (C holding the residual when inPlace) and checks both that
// `taken` says the parallel plan under test is used and the result against float64.
void checkParallelPlan(const Gemm &t, bool inPlace, std::mt19937 &rng,
                       bool (*taken)(const kiln::rt::GemmParams &, const float *),
                       const std::string &plan) {
  kiln_matmul_params_v1 p = params(t);
  if (inPlace) p.alpha = 1.f;
  Data d = makeData(t, p, rng);
  std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
  kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, t.transB, packed.data());
  std::vector<float> c(t.m * p.ldc, -7.f);
  kiln::rt::GemmParams g = kernelParams(t, p, d);
  if (inPlace) residualInC(t, p, d, c, g);
  const std::string what = t.describe() + (inPlace ? " in place" : "");
  EXPECT_TRUE(taken(g, c.data())) << plan << " " << what;
  kiln::rt::gemmAvx512(g, d.a.data(), packed.data(), c.data());
  expectClose(c, reference(t, p, d), t, p.ldc, plan + " " + what);
}

// At 2 threads a few uneven items over a deep K share K out among the threads (each sums a
// partial C, then finishes a share of C's rows): ResNet-50's layer4 3x3 conv as a GEMM, an
// odd M and N, every epilogue, a residual beside C and one in place.
TEST(OwnGemm, SplitKMatchesFloat64) {
  if (kiln::rt::cpuIsaBits() < 512) GTEST_SKIP() << "the AVX-512 kernel splits K";
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  std::mt19937 rng(13);
  const Gemm cases[] = {{49, 512, 4608, true, true, false, KILN_POST_RELU},
                        {23, 200, 1501, false, true, true, KILN_POST_GELU_ERF},
                        {49, 520, 2048, true, false, true, KILN_POST_GELU_TANH},
                        {10, 100, 1100, false, false, false, KILN_POST_CLIP}};
  for (const Gemm &t : cases)
    for (bool inPlace : {false, true})
      checkParallelPlan(t, inPlace, rng, kiln::rt::gemmAvx512SplitsK, "split K");
  omp_set_num_threads(1); // one thread: nothing to share K with
  Gemm t = cases[0];
  kiln_matmul_params_v1 p = params(t);
  Data d = makeData(t, p, rng);
  EXPECT_FALSE(kiln::rt::gemmAvx512SplitsK(kernelParams(t, p, d), nullptr));
  omp_set_num_threads(saved);
}

// At 2 threads a GEMM of 128+ rows in one strip group gives each thread a share of the rows
// (cut at the strip nearest half of M: 63 + 65 rows at M = 128), every epilogue, a residual
// beside C and one in place; at 49 rows or 1 thread it does not.
TEST(OwnGemm, RowSplitMatchesFloat64) {
  if (kiln::rt::cpuIsaBits() < 512) GTEST_SKIP() << "the AVX-512 kernel splits rows";
  if (const char *off = std::getenv("KILN_GEMM_ROW_SPLIT"); off && std::string(off) == "0")
    GTEST_SKIP() << "KILN_GEMM_ROW_SPLIT=0";
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  std::mt19937 rng(17);
  const Gemm cases[] = {{128, 768, 300, true, true, false, KILN_POST_GELU_ERF},
                        {197, 530, 257, false, true, true, KILN_POST_RELU},
                        {131, 600, 96, true, false, true, KILN_POST_GELU_TANH}};
  for (const Gemm &t : cases)
    for (bool inPlace : {false, true})
      checkParallelPlan(t, inPlace, rng, kiln::rt::gemmAvx512SplitsRows, "row split");
  Gemm few{49, 768, 300, true, true, false, KILN_POST_NONE};
  kiln_matmul_params_v1 p = params(few);
  Data d = makeData(few, p, rng);
  EXPECT_FALSE(kiln::rt::gemmAvx512SplitsRows(kernelParams(few, p, d), nullptr));
  omp_set_num_threads(1);
  Gemm t = cases[0];
  p = params(t);
  d = makeData(t, p, rng);
  EXPECT_FALSE(kiln::rt::gemmAvx512SplitsRows(kernelParams(t, p, d), nullptr));
  omp_set_num_threads(saved);
}

// A NaN in A stays NaN through the ReLU's clamp and the GELU (max/min order, blends).
TEST(OwnGemm, NaNStaysNaN) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::mt19937 rng(12);
  for (const NamedKernel &kernel : kernels())
    for (int32_t post : {KILN_POST_RELU, KILN_POST_CLIP, KILN_POST_GELU_ERF}) {
      Gemm t{7, 20, 40, false, true, false, post};
      const kiln_matmul_params_v1 p = params(t);
      Data d = makeData(t, p, rng);
      d.a[2 * p.lda + 5] = std::nanf("");
      std::vector<float> packed(kiln::rt::gemvPackedFloats(t.n, t.k));
      kiln::rt::packGemvWeights(d.b.data(), t.n, t.k, p.ldb, false, packed.data());
      std::vector<float> c(t.m * p.ldc, -7.f);
      kernel.run(kernelParams(t, p, d), d.a.data(), packed.data(), c.data());
      for (int64_t j = 0; j < t.n; ++j) {
        EXPECT_TRUE(std::isnan(c[2 * p.ldc + j]))
            << kernel.name << " post " << post << " column " << j;
        EXPECT_FALSE(std::isnan(c[1 * p.ldc + j]))
            << kernel.name << " post " << post << " column " << j;
      }
    }
}

// Both GELU epilogues over their whole range against float64 (C = A x 1 with K = 1, so C's
// pre-activation is A exactly): |x| up to 20, through 12.6-13.2 where the true value passes
// the float minimum (no result may be denormal, which is slow), and +-inf. Tolerance: 4e-7 on
// erf or tanh, times 0.5 |x|, plus float rounding (both kernels' rational fits,
// gelu_rational.h, measured 2.5e-7 in float, 4 ULPs at 1). The models' own check is rel L2
// < 1e-4.
TEST(OwnGemm, GeluOverItsRange) {
  if (!kiln::rt::gemmAvx2Supported()) GTEST_SKIP() << "no AVX2 on this CPU";
  std::vector<float> xs;
  for (int i = -400; i <= 400; ++i)
    xs.push_back(0.05f * static_cast<float>(i));
  for (float x = -13.3f; x < -12.5f; x += 0.01f)
    xs.push_back(x);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  const int64_t m = static_cast<int64_t>(xs.size()), n = 16;
  std::vector<float> ones(n, 1.f), packed(kiln::rt::gemvPackedFloats(n, 1));
  kiln::rt::packGemvWeights(ones.data(), n, 1, n, false, packed.data());
  kiln::rt::GemmParams g;
  g.m = m;
  g.n = n;
  g.k = 1;
  g.lda = 1;
  g.ldc = g.ldr = n;
  g.alpha = g.beta = 1.f;
  g.bias = g.residual = nullptr;
  g.lo = -std::numeric_limits<float>::infinity();
  g.hi = std::numeric_limits<float>::infinity();
  for (kiln::rt::GemmPost post : {kiln::rt::GemmPost::GeluErf, kiln::rt::GemmPost::GeluTanh}) {
    const bool erf = post == kiln::rt::GemmPost::GeluErf;
    const char *name = erf ? "erf" : "tanh";
    g.post = post;
    for (const NamedKernel &kernel : kernels()) {
      std::vector<float> c(m * n, -7.f);
      kernel.run(g, xs.data(), packed.data(), c.data());
      for (int64_t i = 0; i < m; ++i) {
        const double x = xs[i];
        const float got = c[i * n + 3];
        if (std::isinf(x)) { // +inf stays inf; -inf * 0 is NaN, as in the ONNX reference
          if (x > 0) {
            EXPECT_EQ(got, std::numeric_limits<float>::infinity()) << kernel.name << " " << name;
          } else {
            EXPECT_TRUE(std::isnan(got)) << kernel.name << " " << name;
          }
          continue;
        }
        const double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        const double want =
            erf ? 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))) : 0.5 * x * (1.0 + std::tanh(u));
        EXPECT_NEAR(got, want, 2e-7 * std::fabs(x) + 1e-6 * std::fabs(want) + 1e-30)
            << kernel.name << " " << name << " x " << x;
        EXPECT_FALSE(got != 0.f && std::fabs(got) < std::numeric_limits<float>::min())
            << kernel.name << " " << name << " x " << x << ": a denormal result";
      }
    }
  }
}

// The route's own rule (shim_matmul.h), so a run with KILN_MATMUL_OWN_GEMM=0 skips too.
bool routeOn() {
  return kiln::rt::ownGemmRouteOn();
}

constexpr const char *kNoRoute = "no AVX2, or KILN_MATMUL_OWN_GEMM=0 (oneDNN's route)";

TEST(OwnGemmRoute, TakesOnlyWhatItComputes) {
  if (!routeOn()) GTEST_SKIP() << kNoRoute;
  const bool wide = kiln::rt::usableIsaBits() == 512;
  // The AVX-512 tile leaves K below 256 and N below 512 to oneDNN.
  const int64_t minK = wide ? 256 : 32, fitN = wide ? 520 : 63;
  Gemm t{128, wide ? 600 : 100, 300, true, true, false, KILN_POST_GELU_ERF};
  kiln_matmul_params_v1 p = params(t);
  float c = 0, other = 0;
  EXPECT_TRUE(kiln::rt::ownGemmFits(p, true, nullptr, &c));
  EXPECT_TRUE(kiln::rt::ownGemmFits(p, true, &other, &c));
  EXPECT_FALSE(kiln::rt::ownGemmFits(p, false, nullptr, &c)); // B that is data: oneDNN
  EXPECT_FALSE(kiln::rt::ownGemmFits(p, true, &c, &c));       // in place with alpha 1.5
  kiln_matmul_params_v1 q = p;
  q.alpha = 1.f;
  EXPECT_TRUE(kiln::rt::ownGemmFits(q, true, &c, &c));
  q = p;
  q.addend_kind = 2;
  EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  q = p;
  q.trans_a = 1;
  EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  q = p;
  q.batch = 2;
  q.b_batch_stride = 7;
  EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  // Shapes the tile runs badly stay with oneDNN: N = 20 (most of the last panel padding; N = 24,
  // 8 past a panel, only on AVX-512), N below 512 on AVX-512 above 256 rows, and K below the
  // minimum; N = 63 (AVX2) or 520 and K at the minimum fit.
  q = p;
  q.n = 24; // AVX2: its last 24 columns on the 4 x 24 tile
  EXPECT_EQ(kiln::rt::ownGemmFits(q, true, nullptr, &c), !wide);
  q.n = 20;
  EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  if (wide) {
    q.m = 300;
    q.n = 496;
    EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
    // With few rows the AVX-512 tile takes K and N from 96 (MobileNetV2's 7 x 7 blocks), and
    // up to 256 rows with K >= 256 too; not K or N of 64, nor 196 rows with K = 96.
    const struct {
      int64_t m, n, k;
      bool fits;
    } fewRows[] = {{49, 960, 160, true},  {49, 160, 960, true},   {128, 96, 96, true},
                   {128, 64, 384, false}, {128, 384, 64, false},  {196, 96, 576, true},
                   {196, 576, 96, false}, {196, 256, 1024, true}, {257, 256, 1024, false}};
    for (const auto &f : fewRows) {
      q.m = f.m;
      q.n = f.n;
      q.k = f.k;
      EXPECT_EQ(kiln::rt::ownGemmFits(q, true, nullptr, &c), f.fits)
          << f.m << " x " << f.n << " x " << f.k;
    }
    q = p;
    q.m = 300; // past the few-rows rule, for the K minimum below
  }
  q.n = fitN;
  EXPECT_TRUE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  q.k = minK - 4;
  EXPECT_FALSE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  q.k = minK;
  EXPECT_TRUE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
  if (!wide) // below 32, the AVX2 kernel's lean tile takes K = 16 and 24 only
    for (int64_t k : {8, 16, 20, 24}) {
      q.k = k;
      EXPECT_EQ(kiln::rt::ownGemmFits(q, true, nullptr, &c), k == 16 || k == 24) << "K " << k;
    }
  q.k = minK;
  // Any M from 5 on: a last strip of fewer rows runs a tile of only its rows.
  for (int64_t m : {5, 7, 9, 10, 13, 197}) {
    q.m = m;
    EXPECT_TRUE(kiln::rt::ownGemmFits(q, true, nullptr, &c)) << m << " rows";
  }
  q.m = 197;
  EXPECT_TRUE(kiln::rt::ownGemmFits(q, true, nullptr, &c));
}

TEST(OwnGemmRoute, ShimMatchesFloat64) {
  if (!routeOn()) GTEST_SKIP() << kNoRoute;
  const int saved = omp_get_max_threads();
  std::mt19937 rng(13);
  // K of 256 and more, N of 512 and more, or few rows (a 7 x 7 image's 49 x 160 x 96): both
  // tiles take them; 10 and 13 rows (a short sequence) end in a strip of their own rows.
  const Gemm cases[] = {{24, 512, 300, false, true, false, KILN_POST_NONE},
                        {10, 528, 300, true, true, true, KILN_POST_GELU_ERF},
                        {13, 200, 256, false, true, false, KILN_POST_RELU},
                        {49, 160, 96, true, false, true, KILN_POST_CLIP},
                        {128, 600, 300, true, true, true, KILN_POST_GELU_ERF},
                        {197, 528, 800, false, false, true, KILN_POST_GELU_TANH},
                        {64, 520, 257, true, true, false, KILN_POST_CLIP}};
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Gemm &t : cases) {
      kiln::rt::Runner r;
      const kiln_matmul_params_v1 p = params(t);
      Data d = makeData(t, p, rng);
      r.constantRanges.emplace_back(reinterpret_cast<const char *>(d.b.data()), d.b.size() * 4);
      ASSERT_TRUE(kiln::rt::ownGemmFits(p, true, nullptr, nullptr)) << t.describe();
      std::vector<float> c;
      ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK) << kiln_rt_last_error();
      expectClose(c, reference(t, p, d), t, p.ldc, t.describe());
    }
  }
  omp_set_num_threads(saved);
}

// The panels follow constant updates (weight_gemm_cases.h).
TEST(OwnGemmRoute, PackedPanelsFollowConstantUpdates) {
  if (!routeOn()) GTEST_SKIP() << kNoRoute;
  expectPanelsFollowConstantUpdates(Gemm{48, 520, 256, true, true, true, KILN_POST_RELU}, 9);
}

// Q/K/V as one GEMM over [B_0 | B_1 | B_2] with biases (one absent), against float64.
TEST(OwnGemmRoute, MultiShimMatchesFloat64) {
  if (!routeOn()) GTEST_SKIP() << kNoRoute;
  expectMultiShimMatches(MultiCase{48, 300, 305, {200, 160, 170}, {true, false, true}}, 17, 1.0,
                         kiln::rt::ownGemmMultiFits);
}

} // namespace
