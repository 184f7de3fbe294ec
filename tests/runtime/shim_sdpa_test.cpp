// kiln_shim_sdpa_v1 / _v2 / _v3 against a float64 reference: masks (full, broadcast, -inf
// rows), explicit and default scale, Dv != D, several thread counts; _v3 reading Q, K and V
// in place from one fused projection and writing heads into a padded [B, S, H Dv].
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using kiln::test::randomVector;
using kiln::test::relL2;

struct SdpaCase {
  int64_t B, H, Sq, Skv, D, Dv;
  int mask; // 0 none, 1 full [B,H,Sq,Skv], 2 broadcast [Sq,Skv] causal (-inf above diagonal)
  bool explicitScale;
};

std::vector<double> reference(const SdpaCase &c, const std::vector<float> &q,
                              const std::vector<float> &k, const std::vector<float> &v,
                              const std::vector<float> &mask, const int64_t *ms, double scale) {
  std::vector<double> out(c.B * c.H * c.Sq * c.Dv, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Sq; ++i) {
        std::vector<double> s(c.Skv);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.Skv; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += (double)q[((b * c.H + h) * c.Sq + i) * c.D + d] *
                   k[((b * c.H + h) * c.Skv + j) * c.D + d];
          s[j] = dot * scale;
          if (c.mask) s[j] += mask[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (double &x : s)
          sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < c.Skv; ++j)
          for (int64_t d = 0; d < c.Dv; ++d)
            out[((b * c.H + h) * c.Sq + i) * c.Dv + d] +=
                s[j] / sum * v[((b * c.H + h) * c.Skv + j) * c.Dv + d];
      }
  return out;
}

class SdpaShim : public ::testing::TestWithParam<SdpaCase> {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override { kiln_rt_runner_destroy(ctx_); }
  kiln_shim_ctx *ctx_ = nullptr;
};

TEST_P(SdpaShim, MatchesFloat64Reference) {
  const SdpaCase c = GetParam();
  std::mt19937 rng(7);
  auto q = randomVector(rng, c.B * c.H * c.Sq * c.D);
  auto k = randomVector(rng, c.B * c.H * c.Skv * c.D);
  auto v = randomVector(rng, c.B * c.H * c.Skv * c.Dv);
  std::vector<float> mask;
  int64_t ms[4] = {c.H * c.Sq * c.Skv, c.Sq * c.Skv, c.Skv, 1};
  if (c.mask == 1) mask = randomVector(rng, c.B * c.H * c.Sq * c.Skv);
  if (c.mask == 2) {
    mask.assign(c.Sq * c.Skv, 0.f);
    for (int64_t i = 0; i < c.Sq; ++i)
      for (int64_t j = i + 1; j < c.Skv; ++j)
        mask[i * c.Skv + j] = -INFINITY;
    mask[0] = -INFINITY; // row 0 fully masked (Skv == 1 or j > 0 masked): zeros
    for (int64_t j = 0; j < c.Skv; ++j)
      mask[j] = -INFINITY;
    ms[0] = ms[1] = 0;
  }
  const int64_t dims[6] = {c.B, c.H, c.Sq, c.Skv, c.D, c.Dv};
  const float scale = c.explicitScale ? 0.3f : 1.0f / std::sqrt((float)c.D);
  auto want = reference(c, q, k, v, mask, ms, scale);
  // 2 and 3 threads: heads claimed where there are two a thread (work_claim.h), else blocks.
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> out(want.size(), 123.f);
    const float *m = c.mask ? mask.data() : nullptr;
    const int64_t *msp = c.mask == 2 ? ms : nullptr;
    int st = c.explicitScale ? kiln_shim_sdpa_v1(ctx_, 0, q.data(), k.data(), v.data(), m, msp,
                                                 out.data(), dims, scale)
                             : kiln_shim_sdpa_v2(ctx_, 0, q.data(), k.data(), v.data(), m, msp,
                                                 out.data(), dims, nullptr);
    ASSERT_EQ(st, KILN_OK) << kiln_rt_last_error();
    EXPECT_LT(relL2(out.data(), want), 1e-5) << "threads " << threads;
    if (c.mask == 2) {
      for (int64_t d = 0; d < c.Dv; ++d)
        EXPECT_EQ(out[d], 0.f); // the fully masked row
    }
    kiln_rt_runner_reset(ctx_);
  }
  omp_set_num_threads(omp_get_num_procs());
}

INSTANTIATE_TEST_SUITE_P(Cases, SdpaShim,
                         ::testing::Values(SdpaCase{1, 1, 1, 1, 8, 8, 0, false},
                                           SdpaCase{2, 3, 7, 9, 16, 16, 0, false},
                                           SdpaCase{2, 2, 5, 5, 8, 4, 1, true},
                                           SdpaCase{1, 4, 6, 6, 32, 32, 2, false},
                                           SdpaCase{2, 2, 17, 33, 64, 64, 0, true}));

/// Q, K and V as the column slices of one [B, S, H (2 D + Dv) + pad] projection (what the
/// compiler passes for a fused Q/K/V GEMM), out as heads side by side in rows of H Dv + pad:
/// the same numbers as the packed reference, and nothing written outside the heads.
TEST(SdpaShimStrided, FusedProjectionInPlaceMatchesFloat64) {
  kiln_shim_ctx *ctx = nullptr;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  for (const SdpaCase c :
       {SdpaCase{2, 3, 19, 19, 16, 16, 2, false}, SdpaCase{1, 2, 9, 9, 32, 8, 0, true}}) {
    std::mt19937 rng(11);
    const int64_t pad = 5, ldx = c.H * (2 * c.D + c.Dv) + pad, ldo = c.H * c.Dv + 3;
    const int64_t S = c.Sq;
    auto x = randomVector(rng, c.B * S * ldx);
    // The packed [B, H, S, D] copies the reference reads.
    std::vector<float> q(c.B * c.H * S * c.D), k(q.size()), v(c.B * c.H * S * c.Dv);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t i = 0; i < S; ++i) {
          const float *row = x.data() + (b * S + i) * ldx;
          for (int64_t d = 0; d < c.D; ++d) {
            q[((b * c.H + h) * S + i) * c.D + d] = row[h * c.D + d];
            k[((b * c.H + h) * S + i) * c.D + d] = row[c.H * c.D + h * c.D + d];
          }
          for (int64_t d = 0; d < c.Dv; ++d)
            v[((b * c.H + h) * S + i) * c.Dv + d] = row[2 * c.H * c.D + h * c.Dv + d];
        }
    std::vector<float> mask;
    int64_t ms[4] = {0, 0, S, 1};
    if (c.mask == 2) {
      mask.assign(S * S, 0.f);
      for (int64_t i = 0; i < S; ++i)
        for (int64_t j = i + 1; j < S; ++j)
          mask[i * S + j] = -INFINITY;
    }
    const float scale = c.explicitScale ? 0.3f : 1.0f / std::sqrt((float)c.D);
    const auto packed = reference(c, q, k, v, mask, ms, scale);
    std::vector<double> want(c.B * S * ldo, 7.0); // heads side by side, pads untouched
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.H; ++h)
        for (int64_t i = 0; i < S; ++i)
          for (int64_t d = 0; d < c.Dv; ++d)
            want[(b * S + i) * ldo + h * c.Dv + d] = packed[((b * c.H + h) * S + i) * c.Dv + d];
    const int64_t layout[16] = {0,   S * ldx, c.D,           ldx,     c.H * c.D, S * ldx,
                                c.D, ldx,     2 * c.H * c.D, S * ldx, c.Dv,      ldx,
                                0,   S * ldo, c.Dv,          ldo};
    const int64_t dims[6] = {c.B, c.H, S, S, c.D, c.Dv};
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> out(want.size(), 7.f);
      const float *base = x.data();
      ASSERT_EQ(kiln_shim_sdpa_v3(ctx, 0, base, base, base, c.mask ? mask.data() : nullptr,
                                  c.mask ? ms : nullptr, out.data(), dims,
                                  c.explicitScale ? &scale : nullptr, layout),
                KILN_OK)
          << kiln_rt_last_error();
      EXPECT_LT(relL2(out.data(), want), 1e-5) << "threads " << threads << ", D " << c.D;
      for (int64_t r = 0; r < c.B * S; ++r)
        for (int64_t p = c.H * c.Dv; p < ldo; ++p)
          EXPECT_EQ(out[r * ldo + p], 7.f) << "row " << r << " pad " << p;
      kiln_rt_runner_reset(ctx);
    }
  }
  omp_set_num_threads(omp_get_num_procs());
  kiln_rt_runner_destroy(ctx);
}

TEST(SdpaShimErrors, BadLayoutIsRefused) {
  kiln_shim_ctx *ctx = nullptr;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  float x[64] = {}, out[64] = {};
  const int64_t dims[6] = {1, 1, 2, 2, 4, 4};
  int64_t layout[16] = {0, 8, 8, 4, 0, 8, 8, 4, 0, 8, 8, 4, 0, 8, 8, 4};
  EXPECT_EQ(kiln_shim_sdpa_v3(ctx, 0, x, x, x, nullptr, nullptr, out, dims, nullptr, layout),
            KILN_OK);
  layout[5] = -8; // a negative stride
  EXPECT_EQ(kiln_shim_sdpa_v3(ctx, 0, x, x, x, nullptr, nullptr, out, dims, nullptr, layout),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("layout[5]"), std::string::npos);
  layout[5] = 8;
  layout[15] = 3; // out's rows overlap (stride below Dv)
  EXPECT_EQ(kiln_shim_sdpa_v3(ctx, 0, x, x, x, nullptr, nullptr, out, dims, nullptr, layout),
            KILN_ERR_INVALID_ARGUMENT);
  kiln_rt_runner_destroy(ctx);
}

TEST(SdpaShimErrors, NullCtxAndNegativeDims) {
  float x[4] = {};
  const int64_t dims[6] = {1, 1, 1, 1, 2, 2}, bad[6] = {1, 1, -1, 1, 2, 2};
  EXPECT_EQ(kiln_shim_sdpa_v2(nullptr, 0, x, x, x, nullptr, nullptr, x, dims, nullptr),
            KILN_ERR_INVALID_ARGUMENT);
  kiln_shim_ctx *ctx = nullptr;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  EXPECT_EQ(kiln_shim_sdpa_v1(ctx, 0, x, x, x, nullptr, nullptr, x, bad, 1.f),
            KILN_ERR_INVALID_ARGUMENT);
  kiln_rt_runner_destroy(ctx);
}

} // namespace
