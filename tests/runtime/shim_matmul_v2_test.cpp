// kiln_shim_matmul_v2 (level 7): residual and GELU post-ops against a float64 reference, and
// kiln_shim_matmul_v1 still refusing the level-7 post-ops.
#include "shim_fixture.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kiln::rt {
int64_t matmulColumnBlock(const kiln_matmul_params_v1 &p, bool constantB); // shim_matmul.cpp
}

namespace {

using kiln::test::randomVector;
using kiln::test::relL2;

enum class Res { None, Separate, InPlace };

struct V2Case {
  int64_t batch, m, n, k;
  bool transB, broadcastB;
  int64_t padC;
  float alpha, beta;
  int addend; // 0 none, 1 row
  Res residual;
  int post;
};

double postRef(double v, int post) {
  if (post == KILN_POST_RELU) return std::max(v, 0.0);
  if (post == KILN_POST_GELU_ERF) return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  if (post == KILN_POST_GELU_TANH)
    return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  return v;
}

using MatmulShimV2 = kiln::test::ShimTest<V2Case>;

// float32 sums of k <= 96 products (|terms| < 1) and oneDNN's GELU (its erf/tanh are
// polynomial approximations good to a few float ulps) stay far inside 1e-5 relative L2; a
// missing residual, a missing bias or the other GELU form is off by 1e-2 or more.
TEST_P(MatmulShimV2, MatchesFloat64) {
  const V2Case t = GetParam();
  kiln_matmul_params_v1 p{};
  p.batch = t.batch;
  p.m = t.m;
  p.n = t.n;
  p.k = t.k;
  p.trans_b = t.transB;
  p.lda = t.k;
  p.ldb = t.transB ? t.k : t.n;
  p.ldc = t.n + t.padC;
  const int64_t aSize = t.m * t.k, bSize = t.k * t.n, cSize = t.m * p.ldc;
  p.a_batch_stride = aSize;
  p.b_batch_stride = t.broadcastB ? 0 : bSize;
  p.c_batch_stride = cSize;
  p.alpha = t.alpha;
  p.beta = t.beta;
  p.addend_kind = t.addend;
  p.post_op = t.post;

  std::mt19937 rng(static_cast<unsigned>(t.m * 7 + t.n * 131 + t.k + t.post));
  std::vector<float> a = randomVector(rng, aSize * t.batch);
  std::vector<float> b = randomVector(rng, bSize * (t.broadcastB ? 1 : t.batch));
  std::vector<float> bias = randomVector(rng, t.n);
  std::vector<float> residual = randomVector(rng, cSize * t.batch);
  for (float &r : residual)
    r *= 3.f; // GELU's curved part lies in [-3, 3]: cover it
  std::vector<float> c(cSize * t.batch, 42.f);
  if (t.residual == Res::InPlace) c = residual;

  std::vector<double> want(c.begin(), c.end());
  for (int64_t bi = 0; bi < t.batch; ++bi)
    for (int64_t i = 0; i < t.m; ++i)
      for (int64_t j = 0; j < t.n; ++j) {
        double acc = kiln::test::matmulElement(a.data(), b.data(), p, bi, i, j);
        int64_t ci = bi * cSize + i * p.ldc + j;
        double v = t.alpha * acc;
        if (t.addend == 1) v += double(t.beta) * bias[j];
        if (t.residual != Res::None) v += residual[ci];
        want[ci] = postRef(v, t.post);
      }

  const float *add = t.addend ? bias.data() : nullptr;
  const float *res = t.residual == Res::None      ? nullptr
                     : t.residual == Res::InPlace ? c.data()
                                                  : residual.data();
  ASSERT_EQ(kiln_shim_matmul_v2(ctx_, 3, a.data(), b.data(), add, res, c.data(), &p), KILN_OK)
      << kiln_rt_last_error();
  EXPECT_LT(relL2(c.data(), want), 1e-5);
  kiln::test::expectPaddingKept(c, want, p);
  if (t.residual != Res::InPlace) { // the cached primitive gives the same bits
    std::vector<float> first = c;
    ASSERT_EQ(kiln_shim_matmul_v2(ctx_, 3, a.data(), b.data(), add, res, c.data(), &p), KILN_OK);
    EXPECT_EQ(first, c);
  }
}

constexpr int kErf = KILN_POST_GELU_ERF, kTanh = KILN_POST_GELU_TANH;

// batch, m, n, k, transB, broadcastB, padC, alpha, beta, addend, residual, post
INSTANTIATE_TEST_SUITE_P(
    Cases, MatmulShimV2,
    ::testing::Values(V2Case{1, 16, 24, 32, false, false, 0, 1.f, 1.f, 1, Res::None, kErf},
                      V2Case{1, 16, 24, 32, false, false, 0, 1.f, 1.f, 1, Res::None, kTanh},
                      V2Case{1, 7, 5, 9, false, false, 0, 1.f, 1.f, 0, Res::None, kErf},
                      V2Case{1, 7, 5, 9, true, false, 0, 1.f, 1.f, 0, Res::None, kTanh},
                      V2Case{1, 16, 24, 32, false, false, 0, 1.f, 1.f, 1, Res::Separate, 0},
                      V2Case{1, 16, 24, 32, false, false, 0, 1.f, 1.f, 0, Res::Separate, 0},
                      V2Case{1, 16, 24, 32, false, false, 0, 1.f, 1.f, 1, Res::InPlace, 0},
                      V2Case{3, 9, 20, 96, false, true, 0, 1.f, 1.f, 1, Res::Separate, 0},
                      V2Case{3, 9, 20, 96, false, true, 0, 1.f, 1.f, 1, Res::Separate, kTanh},
                      // broadcast B over back-to-back matrices: folded into one GEMM of 27
                      // rows, with padded C rows and the residual read in place or apart
                      V2Case{3, 9, 20, 96, false, true, 2, 1.f, 1.f, 1, Res::InPlace, kErf},
                      V2Case{4, 5, 12, 16, true, true, 3, 1.f, 1.f, 0, Res::Separate, kErf},
                      V2Case{2, 6, 10, 4, false, false, 3, 0.5f, 2.f, 1, Res::Separate, kErf},
                      V2Case{2, 6, 10, 4, false, false, 3, 1.f, 1.f, 1, Res::InPlace, kErf},
                      V2Case{1, 5, 8, 12, true, false, 0, 1.f, 1.f, 1, Res::Separate, 1},
                      V2Case{1, 4, 4, 0, false, false, 0, 1.f, 1.f, 1, Res::Separate, kTanh}),
    [](const ::testing::TestParamInfo<V2Case> &info) {
      const V2Case &t = info.param;
      return "b" + std::to_string(t.batch) + "_m" + std::to_string(t.m) + "_n" +
             std::to_string(t.n) + "_post" + std::to_string(t.post) + "_case" +
             std::to_string(info.index);
    });

TEST(MatmulShimV2Errors, LevelSevenArgumentsAreChecked) {
  kiln_shim_ctx *ctx;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  kiln_matmul_params_v1 p{};
  p.batch = 1;
  p.m = p.n = p.k = p.lda = p.ldb = p.ldc = 4;
  p.alpha = p.beta = 1.f;
  float v[16] = {}, r[16] = {}, out[16] = {};
  // The GELUs are level 7: kiln_shim_matmul_v1 does not know them.
  p.post_op = KILN_POST_GELU_TANH;
  EXPECT_EQ(kiln_shim_matmul_v1(ctx, 0, v, v, nullptr, out, &p), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("unknown post_op 4"), std::string::npos)
      << kiln_rt_last_error();
  EXPECT_EQ(kiln_shim_matmul_v2(ctx, 0, v, v, nullptr, nullptr, out, &p), KILN_OK);
  p.post_op = 5;
  EXPECT_EQ(kiln_shim_matmul_v2(ctx, 0, v, v, nullptr, nullptr, out, &p),
            KILN_ERR_INVALID_ARGUMENT);
  // A residual and a full addend do not combine.
  p.post_op = KILN_POST_NONE;
  p.addend_kind = 2;
  EXPECT_EQ(kiln_shim_matmul_v2(ctx, 0, v, v, v, r, out, &p), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("residual"), std::string::npos);
  kiln_rt_runner_destroy(ctx);
}

// A wide weight GEMM at small M runs as column blocks of 768 where oneDNN is AVX2 (ctest runs
// this test again as runtime.matmul_column_blocks_avx2 with ONEDNN_MAX_CPU_ISA=AVX2, which
// must take the blocks): N 2400 leaves a tail block of 96; B transposed or not, C padded,
// the bias pre-scaled (beta / alpha != 1), a separate residual and GELU, each block's slice
// of the weights packed once. A block writing the wrong columns or reading the wrong slice
// of B, the bias or the residual is off by O(1) (tolerance as MatchesFloat64 above).
TEST(MatmulShimColumnBlocks, WideWeightGemmMatchesFloat64) {
  for (const bool transB : {false, true}) {
    SCOPED_TRACE(transB ? "B transposed" : "B plain");
    const int64_t m = 16, n = 2400, k = 40;
    kiln_matmul_params_v1 p{};
    p.batch = 1;
    p.m = m;
    p.n = n;
    p.k = k;
    p.trans_b = transB;
    p.lda = k;
    p.ldb = transB ? k : n;
    p.ldc = n + 5;
    p.a_batch_stride = m * k;
    p.c_batch_stride = m * p.ldc;
    p.alpha = 0.5f;
    p.beta = 2.f;
    p.addend_kind = 1;
    p.post_op = KILN_POST_GELU_ERF;
    std::mt19937 rng(transB ? 11 : 7);
    std::vector<float> a = randomVector(rng, m * k), b = randomVector(rng, k * n),
                       bias = randomVector(rng, n), residual = randomVector(rng, m * p.ldc);
    std::vector<float> c(m * p.ldc, 42.f);
    std::vector<double> want(c.begin(), c.end());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const double v = p.alpha * kiln::test::matmulElement(a.data(), b.data(), p, 0, i, j) +
                         double(p.beta) * bias[j] + residual[i * p.ldc + j];
        want[i * p.ldc + j] = postRef(v, p.post_op);
      }
    kiln_shim_ctx *ctx;
    ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
    ASSERT_EQ(kiln_rt_runner_add_constant_range(ctx, b.data(), b.size() * sizeof(float)), KILN_OK);
    const char *cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    if (cap && std::strcmp(cap, "AVX2") == 0) {
      EXPECT_EQ(kiln::rt::matmulColumnBlock(p, true), 768);
    }
    EXPECT_EQ(kiln::rt::matmulColumnBlock(p, false), 0); // B not a weight: one GEMM
    for (int call = 0; call < 2; ++call) {               // the second call reuses the packed slices
      std::fill(c.begin(), c.end(), 42.f);
      ASSERT_EQ(kiln_shim_matmul_v2(ctx, 5, a.data(), b.data(), bias.data(), residual.data(),
                                    c.data(), &p),
                KILN_OK)
          << kiln_rt_last_error();
      EXPECT_LT(relL2(c.data(), want), 1e-5);
      kiln::test::expectPaddingKept(c, want, p);
    }
    kiln_rt_runner_destroy(ctx);
  }
}

} // namespace
