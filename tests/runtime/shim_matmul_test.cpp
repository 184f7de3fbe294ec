// kiln_shim_matmul_v1 against a float64 reference.
#include "shim_fixture.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace {

using kiln::test::randomVector;
using kiln::test::relL2;

struct MatmulCase {
  int64_t batch, m, n, k;
  bool transA, transB, broadcastA, broadcastB;
  int64_t padA, padB, padC; // extra leading-dimension elements
  float alpha, beta;
  int addend; // 0 none, 1 row, 2 full
  int post;
  bool addendInPlace = false;
};

using MatmulShim = kiln::test::ShimTest<MatmulCase>;

TEST_P(MatmulShim, MatchesReference) {
  const MatmulCase t = GetParam();
  kiln_matmul_params_v1 p{};
  p.batch = t.batch;
  p.m = t.m;
  p.n = t.n;
  p.k = t.k;
  p.trans_a = t.transA;
  p.trans_b = t.transB;
  p.lda = (t.transA ? t.m : t.k) + t.padA;
  p.ldb = (t.transB ? t.k : t.n) + t.padB;
  p.ldc = t.n + t.padC;
  int64_t aSize = p.lda * (t.transA ? t.k : t.m), bSize = p.ldb * (t.transB ? t.n : t.k),
          cSize = p.ldc * t.m;
  p.a_batch_stride = t.broadcastA ? 0 : aSize;
  p.b_batch_stride = t.broadcastB ? 0 : bSize;
  p.c_batch_stride = cSize;
  p.alpha = t.alpha;
  p.beta = t.beta;
  p.addend_kind = t.addend;
  p.post_op = t.post;
  p.clip_min = -0.5f;
  p.clip_max = 0.75f;

  std::mt19937 rng(static_cast<unsigned>(t.m * 131 + t.n * 17 + t.k));
  std::vector<float> a = randomVector(rng, aSize * (t.broadcastA ? 1 : t.batch));
  std::vector<float> b = randomVector(rng, bSize * (t.broadcastB ? 1 : t.batch));
  std::vector<float> addend = randomVector(rng, t.addend == 1   ? t.n
                                                : t.addend == 2 ? cSize * t.batch
                                                                : 1);
  std::vector<float> c(cSize * t.batch, 42.f);
  if (t.addendInPlace) c = addend;

  std::vector<double> want(c.begin(), c.end());
  for (int64_t bi = 0; bi < t.batch; ++bi)
    for (int64_t i = 0; i < t.m; ++i)
      for (int64_t j = 0; j < t.n; ++j) {
        double acc = kiln::test::matmulElement(a.data(), b.data(), p, bi, i, j);
        int64_t ci = bi * cSize + i * p.ldc + j;
        double v = t.alpha * acc;
        if (t.addend == 1) v += double(t.beta) * addend[j];
        if (t.addend == 2) v += double(t.beta) * addend[ci];
        if (t.post == KILN_POST_RELU) v = std::max(v, 0.0);
        if (t.post == KILN_POST_CLIP) v = std::min(std::max(v, -0.5), 0.75);
        want[ci] = v;
      }

  const float *add = t.addend == 0 ? nullptr : t.addendInPlace ? c.data() : addend.data();
  ASSERT_EQ(kiln_shim_matmul_v1(ctx_, 1, a.data(), b.data(), add, c.data(), &p), KILN_OK)
      << kiln_rt_last_error();
  // Padding elements between rows must be untouched.
  EXPECT_LT(relL2(c.data(), want), 1e-5);
  kiln::test::expectPaddingKept(c, want, p);
  // A second call hits the cached primitive and must give the same result.
  if (!t.addendInPlace && t.addend != 2) {
    std::vector<float> first = c;
    ASSERT_EQ(kiln_shim_matmul_v1(ctx_, 1, a.data(), b.data(), add, c.data(), &p), KILN_OK);
    EXPECT_EQ(first, c);
  }
}

// batch, m, n, k, transA, transB, bcastA, bcastB, padA, padB, padC, alpha, beta, addend, post
INSTANTIATE_TEST_SUITE_P(
    Cases, MatmulShim,
    ::testing::Values(
        MatmulCase{1, 8, 8, 8, false, false, false, false, 0, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{1, 1, 3, 17, false, false, false, false, 0, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{1, 5, 3, 17, false, false, false, false, 4, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{1, 33, 65, 17, true, false, false, false, 3, 2, 5, 1.f, 1.f, 0, 0},
        MatmulCase{1, 33, 65, 17, false, true, false, false, 0, 3, 0, 1.f, 1.f, 0, 0},
        MatmulCase{1, 12, 7, 9, true, true, false, false, 1, 1, 1, 1.f, 1.f, 0, 0},
        MatmulCase{4, 16, 24, 32, false, false, false, false, 0, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{3, 5, 7, 11, false, false, false, true, 0, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{3, 5, 7, 11, false, false, true, false, 0, 0, 0, 1.f, 1.f, 0, 0},
        MatmulCase{3, 5, 7, 11, true, true, false, true, 2, 3, 4, 1.f, 1.f, 0, 0},
        MatmulCase{2, 6, 10, 4, false, false, false, false, 0, 0, 0, 0.5f, 1.f, 1, 0},
        MatmulCase{2, 6, 10, 4, false, false, false, false, 0, 0, 0, 1.f, 1.f, 1, 1},
        MatmulCase{1, 9, 13, 6, false, true, false, false, 0, 0, 0, 2.f, -0.5f, 1, 2},
        MatmulCase{2, 6, 10, 4, false, false, false, true, 0, 0, 3, 1.5f, 0.25f, 2, 0},
        MatmulCase{1, 6, 10, 4, false, false, false, false, 0, 0, 0, 1.f, 1.f, 2, 1},
        MatmulCase{3, 7, 5, 8, true, false, true, false, 1, 0, 2, 0.7f, 2.f, 2, 2},
        MatmulCase{1, 64, 1, 64, false, false, false, false, 0, 0, 0, 1.f, 1.f, 1, 1},
        MatmulCase{2, 4, 4, 0, false, false, false, false, 0, 0, 0, 1.f, 2.f, 2, 1},
        MatmulCase{1, 4, 4, 3, false, false, false, false, 0, 0, 0, 0.f, 2.f, 1, 0},
        MatmulCase{2, 6, 10, 4, false, false, false, false, 0, 0, 0, 1.f, 0.5f, 2, 1, true}),
    [](const ::testing::TestParamInfo<MatmulCase> &info) {
      const MatmulCase &t = info.param;
      return "b" + std::to_string(t.batch) + "_m" + std::to_string(t.m) + "_n" +
             std::to_string(t.n) + "_k" + std::to_string(t.k) + "_case" +
             std::to_string(info.index);
    });

TEST(MatmulShimErrors, BadArgumentsSetMessage) {
  kiln_shim_ctx *ctx;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  kiln_matmul_params_v1 p{};
  p.batch = 1;
  p.m = p.n = p.k = 4;
  p.lda = 2; // < k
  p.ldb = p.ldc = 4;
  p.alpha = 1.f;
  float v[16] = {};
  EXPECT_EQ(kiln_shim_matmul_v1(ctx, 0, v, v, nullptr, v, &p), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("leading dimension"), std::string::npos);
  p.lda = 4;
  p.addend_kind = 2; // full addend but no pointer
  EXPECT_EQ(kiln_shim_matmul_v1(ctx, 0, v, v, nullptr, v, &p), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_shim_matmul_v1(ctx, 0, v, v, nullptr, v, nullptr), KILN_ERR_INVALID_ARGUMENT);
  kiln_rt_runner_destroy(ctx);
}

} // namespace
