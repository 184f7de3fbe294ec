// kiln's Winograd F(4x4, 3x3) and F(2x2, 3x3) convs (src/runtime/conv_winograd*) against a
// float64 direct convolution, on every kernel set this CPU runs and both tiles; which convs
// take it with which tile; weight hot-swap.
//
// Tolerance: Winograd's transforms scale rounding errors by their largest coefficients
// (Bᵀ up to 5, Aᵀ up to 8, G's 1/24 .. 1/4), so F(4,3) in float32 is ~10x less exact than a
// direct float32 sum: measured rel L2 1e-6 .. 2e-6 at C = 64 .. 512 (bench/conv), against
// ~1e-7 for a direct conv. 1e-5 leaves 5x headroom and still fails on any wrong coefficient,
// tile edge or channel offset (those give errors of order 1). F(2,3)'s coefficients are at
// most 1, so it is at least as exact.
#include "conv_winograd.h"
#include "shim_conv.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <string>

namespace {

namespace wg = kiln::rt::winograd;
using kiln::test::randomVector;
using kiln::test::relL2;

constexpr double kTolerance = 1e-5;

struct Case {
  int64_t n, c, k, h, w, padT, padL, padB, padR;
  int post;
  bool bias, residual, inPlace;
  int64_t oh() const { return h + padT + padB - 2; }
  int64_t ow() const { return w + padL + padR - 2; }
  std::string describe() const {
    return "n" + std::to_string(n) + " c" + std::to_string(c) + " k" + std::to_string(k) + " " +
           std::to_string(h) + "x" + std::to_string(w) + " pads " + std::to_string(padT) +
           std::to_string(padL) + std::to_string(padB) + std::to_string(padR) + " post " +
           std::to_string(post) + (bias ? " bias" : "") + (residual ? " residual" : "") +
           (inPlace ? "(in place)" : "");
  }
};

kiln_conv_params_v1 paramsOf(const Case &t) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  p.post_op = t.post;
  p.clip_min = -0.25f;
  p.clip_max = 0.5f;
  for (int i = 0; i < 2; ++i)
    p.strides[i] = p.dilations[i] = 1;
  p.pads_begin[0] = t.padT;
  p.pads_begin[1] = t.padL;
  p.pads_end[0] = t.padB;
  p.pads_end[1] = t.padR;
  return p;
}

// Direct 3x3 conv in float64 on NHWC data, OIHW weights.
std::vector<double> reference(const Case &t, const std::vector<float> &x,
                              const std::vector<float> &w, const std::vector<float> &bias,
                              const std::vector<float> &residual) {
  const int64_t OH = t.oh(), OW = t.ow();
  std::vector<double> y(t.n * OH * OW * t.k);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t k = 0; k < t.k; ++k) {
          double s = t.bias ? bias[k] : 0.0;
          for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx) {
              const int64_t iy = oy - t.padT + ky, ix = ox - t.padL + kx;
              if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
              for (int64_t c = 0; c < t.c; ++c)
                s += double(x[((n * t.h + iy) * t.w + ix) * t.c + c]) *
                     w[((k * t.c + c) * 3 + ky) * 3 + kx];
            }
          const int64_t at = ((n * OH + oy) * OW + ox) * t.k + k;
          if (t.residual) s += residual[at];
          if (t.post == KILN_POST_RELU) s = std::max(s, 0.0);
          if (t.post == KILN_POST_CLIP) s = std::min(std::max(s, -0.25), 0.5);
          y[at] = s;
        }
  return y;
}

void checkCase(const Case &t, std::mt19937 &rng) {
  SCOPED_TRACE(t.describe());
  const int64_t outN = t.n * t.oh() * t.ow() * t.k;
  std::vector<float> x = randomVector(rng, t.n * t.h * t.w * t.c),
                     w = randomVector(rng, t.k * t.c * 9), bias = randomVector(rng, t.k),
                     residual = randomVector(rng, outN), y(outN, 123.f);
  const std::vector<double> want = reference(t, x, w, bias, residual);
  if (t.inPlace) y = residual;
  kiln::rt::Runner r;
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  const int64_t xd[4] = {t.n, t.c, t.h, t.w}, wd[4] = {t.k, t.c, 3, 3},
                yd[4] = {t.n, t.k, t.oh(), t.ow()};
  const kiln_conv_params_v1 p = paramsOf(t);
  ASSERT_TRUE(wg::wanted(xd, wd, yd, p));
  const float *res = t.inPlace ? y.data() : t.residual ? residual.data() : nullptr;
  ASSERT_EQ(wg::forward(r, 0, x.data(), xd, w.data(), wd, t.bias ? bias.data() : nullptr, res,
                        y.data(), yd, p),
            KILN_OK)
      << kiln_rt_last_error();
  EXPECT_LT(relL2(y.data(), want), kTolerance);
}

const Case kCases[] = {
    // ResNet's shape family, edge tiles of every width (OH, OW mod 4 = 0..3), batch > 1.
    {1, 64, 64, 16, 16, 1, 1, 1, 1, KILN_POST_RELU, true, false, false},
    {2, 32, 64, 15, 13, 1, 1, 1, 1, KILN_POST_NONE, true, true, false},
    {1, 16, 128, 14, 18, 1, 1, 1, 1, KILN_POST_CLIP, false, true, true},
    // Asymmetric and absent padding; a pad of 2 gives output rows that see only padding.
    {1, 48, 64, 17, 19, 0, 2, 2, 0, KILN_POST_RELU, true, true, false},
    {1, 16, 64, 20, 16, 0, 0, 0, 0, KILN_POST_NONE, false, false, false},
    // Long channel reduction, several weight panels and chunks of tiles.
    {2, 128, 128, 28, 28, 1, 1, 1, 1, KILN_POST_RELU, true, true, true},
};

class WinogradIsa : public ::testing::TestWithParam<wg::Isa> {
protected:
  void SetUp() override {
    if (!wg::forceIsa(GetParam())) GTEST_SKIP() << "this CPU lacks the kernel set";
  }
  void TearDown() override {
    wg::forceIsa(wg::Isa::Auto);
    wg::forceTile(wg::Tile::Auto);
  }
};

TEST_P(WinogradIsa, MatchesFloat64DirectConv) {
  for (wg::Tile tile : {wg::Tile::F4, wg::Tile::F2}) {
    SCOPED_TRACE(tile == wg::Tile::F4 ? "F(4x4, 3x3)" : "F(2x2, 3x3)");
    wg::forceTile(tile);
    std::mt19937 rng(11);
    for (const Case &t : kCases)
      checkCase(t, rng);
  }
}

// Both ways of sharing a call among threads, with thread counts that split the tiles and the
// chunks unevenly (3 threads: shares of 1/3 of a chunk each), and more threads than the
// smallest case's chunk has tiles (20 x 16 at F(4x4): 20 tiles), where the tile split runs on
// fewer threads. (An overrun of a thread's share would land inside the same scratch buffer,
// which a wrong result shows only when threads race on it.)
TEST_P(WinogradIsa, EveryThreadSplitMatchesFloat64DirectConv) {
  const int before = omp_get_max_threads();
  for (wg::Split split : {wg::Split::Tiles, wg::Split::Phases})
    for (int threads : {2, 3, 24}) {
      SCOPED_TRACE((split == wg::Split::Tiles ? "tiles, " : "phases, ") + std::to_string(threads) +
                   " threads");
      wg::forceSplit(split);
      omp_set_num_threads(threads);
      std::mt19937 rng(12);
      for (const Case &t : kCases)
        checkCase(t, rng);
    }
  omp_set_num_threads(before);
  wg::forceSplit(wg::Split::Auto);
}

INSTANTIATE_TEST_SUITE_P(Kernels, WinogradIsa, ::testing::Values(wg::Isa::Avx512, wg::Isa::Avx2),
                         [](const auto &info) {
                           return info.param == wg::Isa::Avx512 ? "avx512" : "avx2";
                         });

TEST(Winograd, TakesOnly3x3Stride1UngroupedConvsWithEnoughTiles) {
  if (!wg::forceIsa(wg::Isa::Auto)) GTEST_SKIP() << "no Winograd kernels on this CPU";
  Case t{1, 64, 64, 56, 56, 1, 1, 1, 1, KILN_POST_RELU, true, false, false};
  kiln_conv_params_v1 p = paramsOf(t);
  int64_t xd[4] = {1, 64, 56, 56}, wd[4] = {64, 64, 3, 3}, yd[4] = {1, 64, 56, 56};
  EXPECT_TRUE(wg::wanted(xd, wd, yd, p));
  p.strides[1] = 2;
  EXPECT_FALSE(wg::wanted(xd, wd, yd, p)) << "stride 2";
  p = paramsOf(t);
  p.dilations[0] = 2;
  EXPECT_FALSE(wg::wanted(xd, wd, yd, p)) << "dilation 2";
  p = paramsOf(t);
  p.groups = 2;
  EXPECT_FALSE(wg::wanted(xd, wd, yd, p)) << "grouped";
  p = paramsOf(t);
  int64_t w1[4] = {64, 64, 1, 1};
  EXPECT_FALSE(wg::wanted(xd, w1, yd, p)) << "1x1";
  int64_t xOdd[4] = {1, 24, 56, 56};
  EXPECT_FALSE(wg::wanted(xOdd, wd, yd, p)) << "C not a multiple of 16";
  int64_t x7[4] = {1, 512, 7, 7}, w7[4] = {512, 512, 3, 3}, y7[4] = {1, 512, 7, 7};
  EXPECT_FALSE(wg::wanted(x7, w7, y7, p)) << "7x7: 4 tiles";
  x7[0] = y7[0] = 8;
  EXPECT_FALSE(wg::wanted(x7, w7, y7, p)) << "7x7, batch 8: still 4 tiles per image";
  wg::setEnabled(false);
  EXPECT_FALSE(wg::wanted(xd, wd, yd, p)) << "switched off";
  wg::setEnabled(true);
}

TEST(Winograd, SmallImagesTakeTheSmallerTile) {
  wg::forceTile(wg::Tile::Auto);
  const int64_t y14[4] = {1, 256, 14, 14}, y20[4] = {1, 64, 20, 20}, y24[4] = {1, 64, 24, 24},
                y28[4] = {1, 128, 28, 28}, y56[4] = {4, 64, 56, 56};
  EXPECT_EQ(wg::outputTile(y14), 2); // 16 tiles of 4x4 per image
  EXPECT_EQ(wg::outputTile(y20), 2); // 25
  EXPECT_EQ(wg::outputTile(y24), 4); // 36
  EXPECT_EQ(wg::outputTile(y28), 4);
  EXPECT_EQ(wg::outputTile(y56), 4);
}

// A constant updated in place must not leave a stale transformed copy behind: the runner
// drops derived weights when the container's constants token changes (Runner::useConstants).
TEST(Winograd, TransformedWeightsFollowAConstantUpdate) {
  if (!wg::forceIsa(wg::Isa::Auto)) GTEST_SKIP() << "no Winograd kernels on this CPU";
  Case t{1, 32, 64, 16, 16, 1, 1, 1, 1, KILN_POST_NONE, false, false, false};
  std::mt19937 rng(5);
  std::vector<float> x = randomVector(rng, 16 * 16 * 32), w = randomVector(rng, 64 * 32 * 9),
                     y(16 * 16 * 64);
  const int64_t xd[4] = {1, 32, 16, 16}, wd[4] = {64, 32, 3, 3}, yd[4] = {1, 64, 16, 16};
  const kiln_conv_params_v1 p = paramsOf(t);
  kiln::rt::Runner r;
  const char *base = reinterpret_cast<const char *>(w.data());
  r.useConstants(base, w.size() * 4, 1);
  auto run = [&] {
    ASSERT_EQ(kiln::rt::convForward(r, 3, x.data(), xd, w.data(), wd, nullptr, nullptr, y.data(),
                                    yd, p, kiln::rt::ConvLayout::ChannelsLast),
              KILN_OK)
        << kiln_rt_last_error();
  };
  run();
  EXPECT_LT(relL2(y.data(), reference(t, x, w, {}, {})), kTolerance);
  EXPECT_EQ(r.dnnl.numWeights(), 1u); // the transformed copy, cached
  for (float &v : w)
    v = -2.f * v;
  r.useConstants(base, w.size() * 4, 2); // what a container run does after an update
  EXPECT_EQ(r.dnnl.numWeights(), 0u);
  run();
  EXPECT_LT(relL2(y.data(), reference(t, x, w, {}, {})), kTolerance);
}

} // namespace
