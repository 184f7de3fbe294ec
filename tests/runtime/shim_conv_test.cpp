// kiln_shim_conv_v1 against a float64 reference over many random configurations.
#include "shim_conv.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace {

using kiln::rt::ConvLayout;
using kiln::test::randomVector;
using kiln::test::relL2;

struct ConvCase {
  int rank;
  int64_t n, c, o, groups;
  int64_t in[3], kernel[3];
  kiln_conv_params_v1 p;
  bool bias, residual, residualInPlace;

  std::string describe() const {
    std::string s = "rank " + std::to_string(rank) + " n" + std::to_string(n) + " c" +
                    std::to_string(c) + " o" + std::to_string(o) + " g" + std::to_string(groups);
    for (int i = 0; i < rank; ++i)
      s += " [in " + std::to_string(in[i]) + " k " + std::to_string(kernel[i]) + " s " +
           std::to_string(p.strides[i]) + " d " + std::to_string(p.dilations[i]) + " pad " +
           std::to_string(p.pads_begin[i]) + "/" + std::to_string(p.pads_end[i]) + "]";
    s += bias ? " bias" : "";
    s += residual ? (residualInPlace ? " residual(in place)" : " residual") : "";
    s += " post " + std::to_string(p.post_op);
    return s;
  }
};

int64_t outSize(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pl, int64_t pr) {
  return (in + pl + pr - d * (k - 1) - 1) / s + 1;
}

// Dims as N, C, D, H, W with leading spatial dims of 1 for rank < 3.
struct Dims5 {
  int64_t v[5];
};

std::vector<double> reference(const ConvCase &t, const std::vector<float> &x,
                              const std::vector<float> &w, const std::vector<float> &bias,
                              const std::vector<float> &residual, const int64_t *yDims) {
  int r = t.rank;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1}, s[3] = {1, 1, 1},
          d[3] = {1, 1, 1}, pl[3] = {0, 0, 0};
  for (int i = 0; i < r; ++i) {
    int j = 3 - r + i;
    in[j] = t.in[i];
    k[j] = t.kernel[i];
    out[j] = yDims[2 + i];
    s[j] = t.p.strides[i];
    d[j] = t.p.dilations[i];
    pl[j] = t.p.pads_begin[i];
  }
  int64_t cg = t.c / t.groups, og = t.o / t.groups;
  std::vector<double> y(t.n * t.o * out[0] * out[1] * out[2]);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t o = 0; o < t.o; ++o)
      for (int64_t z = 0; z < out[0]; ++z)
        for (int64_t yy = 0; yy < out[1]; ++yy)
          for (int64_t xx = 0; xx < out[2]; ++xx) {
            int64_t g = o / og;
            double acc = t.bias ? bias[o] : 0.0;
            for (int64_t c = 0; c < cg; ++c)
              for (int64_t kz = 0; kz < k[0]; ++kz)
                for (int64_t ky = 0; ky < k[1]; ++ky)
                  for (int64_t kx = 0; kx < k[2]; ++kx) {
                    int64_t iz = z * s[0] - pl[0] + kz * d[0];
                    int64_t iy = yy * s[1] - pl[1] + ky * d[1];
                    int64_t ix = xx * s[2] - pl[2] + kx * d[2];
                    if (iz < 0 || iz >= in[0] || iy < 0 || iy >= in[1] || ix < 0 || ix >= in[2])
                      continue;
                    int64_t ci = g * cg + c;
                    double xv = x[(((n * t.c + ci) * in[0] + iz) * in[1] + iy) * in[2] + ix];
                    double wv = w[(((o * cg + c) * k[0] + kz) * k[1] + ky) * k[2] + kx];
                    acc += xv * wv;
                  }
            int64_t yi = (((n * t.o + o) * out[0] + z) * out[1] + yy) * out[2] + xx;
            if (t.residual) acc += residual[yi];
            if (t.p.post_op == KILN_POST_RELU) acc = std::max(acc, 0.0);
            if (t.p.post_op == KILN_POST_CLIP)
              acc = std::min(std::max(acc, double(t.p.clip_min)), double(t.p.clip_max));
            y[yi] = acc;
          }
  return y;
}

ConvCase randomCase(std::mt19937 &rng, int rank, int groupKind) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  ConvCase t{};
  t.rank = rank;
  t.n = pick(1, 2);
  if (groupKind == 0) {
    t.groups = 1;
    t.c = pick(1, 6);
    t.o = pick(1, 7);
  } else if (groupKind == 1) {
    t.groups = 2;
    t.c = 2 * pick(1, 3);
    t.o = 2 * pick(1, 3);
  } else { // depthwise (optionally with a channel multiplier)
    t.c = pick(2, 8);
    t.groups = t.c;
    t.o = t.c * pick(1, 2);
  }
  t.p.spatial_rank = rank;
  t.p.groups = t.groups;
  for (int i = 0; i < rank; ++i) {
    t.in[i] = rank == 3 ? pick(3, 6) : pick(4, 10);
    t.kernel[i] = pick(1, 3);
    t.p.strides[i] = pick(1, 2);
    t.p.dilations[i] = pick(1, 2);
    t.p.pads_begin[i] = pick(0, 2);
    t.p.pads_end[i] = pick(0, 2);
    // Keep the output non-empty.
    while (outSize(t.in[i], t.kernel[i], t.p.strides[i], t.p.dilations[i], t.p.pads_begin[i],
                   t.p.pads_end[i]) < 1)
      ++t.in[i];
  }
  t.bias = pick(0, 1);
  t.residual = pick(0, 2) == 0;
  t.residualInPlace = t.residual && pick(0, 1);
  t.p.post_op = pick(0, 2);
  t.p.clip_min = -0.25f;
  t.p.clip_max = 0.5f;
  return t;
}

// Runs one case through the shim (layout Blocked via the C entry, or Plain directly).
void runCase(kiln_shim_ctx *ctx, const ConvCase &t, ConvLayout layout, int64_t site,
             std::mt19937 &rng) {
  SCOPED_TRACE(t.describe());
  if (getenv("KILN_TEST_VERBOSE")) fprintf(stderr, "%s\n", t.describe().c_str());
  int r = t.rank;
  std::vector<int64_t> xDims{t.n, t.c}, wDims{t.o, t.c / t.groups}, yDims{t.n, t.o};
  for (int i = 0; i < r; ++i) {
    xDims.push_back(t.in[i]);
    wDims.push_back(t.kernel[i]);
    yDims.push_back(outSize(t.in[i], t.kernel[i], t.p.strides[i], t.p.dilations[i],
                            t.p.pads_begin[i], t.p.pads_end[i]));
  }
  auto count = [](const std::vector<int64_t> &d) {
    int64_t n = 1;
    for (int64_t v : d)
      n *= v;
    return static_cast<size_t>(n);
  };
  std::vector<float> x = randomVector(rng, count(xDims)), w = randomVector(rng, count(wDims)),
                     bias = randomVector(rng, t.o), residual = randomVector(rng, count(yDims));
  std::vector<double> want = reference(t, x, w, bias, residual, yDims.data());
  std::vector<float> y(count(yDims), 123.f);
  if (t.residualInPlace) y = residual;
  const float *res = t.residual ? (t.residualInPlace ? y.data() : residual.data()) : nullptr;
  int st;
  if (layout == ConvLayout::Blocked)
    st = kiln_shim_conv_v1(ctx, site, x.data(), xDims.data(), w.data(), wDims.data(),
                           t.bias ? bias.data() : nullptr, res, y.data(), yDims.data(), &t.p);
  else
    st = kiln::rt::convForward(*static_cast<kiln::rt::Runner *>(ctx), site, x.data(), xDims.data(),
                               w.data(), wDims.data(), t.bias ? bias.data() : nullptr, res,
                               y.data(), yDims.data(), t.p, layout);
  ASSERT_EQ(st, KILN_OK) << kiln_rt_last_error();
  EXPECT_LT(relL2(y.data(), want), 1e-5);
  if (getenv("KILN_TEST_VERBOSE") && relL2(y.data(), want) > 1e-5)
    for (size_t i = 0; i < want.size(); ++i)
      fprintf(stderr, "%zu: got %g want %g residual %g\n", i, y[i], want[i], residual[i]);
}

class ConvShim : public ::testing::TestWithParam<ConvLayout> {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override { kiln_rt_runner_destroy(ctx_); }
  kiln_shim_ctx *ctx_ = nullptr;
};

TEST_P(ConvShim, RandomCasesMatchReference) {
  std::mt19937 rng(1234);
  int64_t site = 0;
  for (int rank = 1; rank <= 3; ++rank)
    for (int groupKind = 0; groupKind < 3; ++groupKind)
      for (int rep = 0; rep < 12; ++rep)
        runCase(ctx_, randomCase(rng, rank, groupKind), GetParam(), site++, rng);
}

TEST_P(ConvShim, CachedPrimitiveIsReusedAcrossCalls) {
  // The same site and shape twice, with new data each time: the cached primitive must
  // not hold on to old data (weights are not constants here, so they are re-reordered).
  std::mt19937 rng(7);
  ConvCase t = randomCase(rng, 2, 0);
  runCase(ctx_, t, GetParam(), 5, rng);
  runCase(ctx_, t, GetParam(), 5, rng);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ConvShim,
                         ::testing::Values(ConvLayout::Blocked, ConvLayout::Plain),
                         [](const auto &info) {
                           return info.param == ConvLayout::Blocked ? std::string("Blocked")
                                                                    : std::string("Plain");
                         });

TEST(ConvShimErrors, BadArgumentsSetMessage) {
  kiln_shim_ctx *ctx;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  kiln_conv_params_v1 p{};
  p.spatial_rank = 4;
  p.groups = 1;
  int64_t dims[4] = {1, 1, 1, 1};
  float v = 0;
  EXPECT_EQ(kiln_shim_conv_v1(ctx, 0, &v, dims, &v, dims, nullptr, nullptr, &v, dims, &p),
            KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("spatial_rank"), std::string::npos);
  EXPECT_EQ(kiln_shim_conv_v1(nullptr, 0, &v, dims, &v, dims, nullptr, nullptr, &v, dims, &p),
            KILN_ERR_INVALID_ARGUMENT);
  kiln_rt_runner_destroy(ctx);
}

TEST(ConvShimCache, ConstantWeightsAreReorderedOnce) {
  kiln_shim_ctx *ctx;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  std::mt19937 rng(3);
  std::vector<float> x = randomVector(rng, 16 * 8 * 8), w = randomVector(rng, 32 * 16 * 9);
  ASSERT_EQ(kiln_rt_runner_add_constant_range(ctx, w.data(), w.size() * sizeof(float)), KILN_OK);
  std::vector<float> y(32 * 8 * 8);
  int64_t xd[4] = {1, 16, 8, 8}, wd[4] = {32, 16, 3, 3}, yd[4] = {1, 32, 8, 8};
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  for (int i = 0; i < 2; ++i) {
    p.strides[i] = p.dilations[i] = 1;
    p.pads_begin[i] = p.pads_end[i] = 1;
  }
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(
        kiln_shim_conv_v1(ctx, 1, x.data(), xd, w.data(), wd, nullptr, nullptr, y.data(), yd, &p),
        KILN_OK)
        << kiln_rt_last_error();
  auto *runner = static_cast<kiln::rt::Runner *>(ctx);
  EXPECT_EQ(runner->dnnl.numEntries(), 1u);
  EXPECT_LE(runner->dnnl.numWeights(), 1u); // 0 when oneDNN takes the plain layout
  kiln_rt_runner_destroy(ctx);
}

} // namespace
