// kiln's direct conv of few input channels (conv_direct.h) through the conv shim, against a
// float64 reference: the stems it was written for (3x3 and 7x7 at stride 2 on 3 channels),
// other channel counts, windows, strides and asymmetric pads, maps whose every tile touches
// an edge, rows not a multiple of the 6-pixel tile, batches, bias or none, ReLU/clip/none, 1
// and 2 threads; the packed-weight cache across a constant swap; which convs the route takes.
#include "conv_direct.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

namespace {

using kiln::test::randomVector;
using kiln::test::ThreadCount;

struct StemCase {
  int64_t n, c, h, w, o, kh, kw, strideH, strideW, padT, padL, padB, padR;
  bool bias;
  int32_t post;
  int64_t oh() const { return (h + padT + padB - kh) / strideH + 1; }
  int64_t ow() const { return (w + padL + padR - kw) / strideW + 1; }
  std::string describe() const {
    return "n" + std::to_string(n) + " " + std::to_string(c) + "->" + std::to_string(o) + " " +
           std::to_string(h) + "x" + std::to_string(w) + " k" + std::to_string(kh) + "x" +
           std::to_string(kw) + " s" + std::to_string(strideH) + std::to_string(strideW) +
           " pads " + std::to_string(padT) + std::to_string(padL) + std::to_string(padB) +
           std::to_string(padR) + " post " + std::to_string(post) + (bias ? " bias" : "");
  }
};

kiln_conv_params_v1 params(const StemCase &t) {
  return kiln::test::conv2dParams(t.strideH, t.strideW, {t.padT, t.padL, t.padB, t.padR}, t.post,
                                  -0.25f, 0.5f);
}

// y NHWC in float64 from x NHWC and ONNX weights [O, C, kh, kw].
std::vector<double> reference(const StemCase &t, const std::vector<float> &x,
                              const std::vector<float> &w, const std::vector<float> &b,
                              const kiln_conv_params_v1 &p) {
  std::vector<double> y(t.n * t.oh() * t.ow() * t.o);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t oy = 0; oy < t.oh(); ++oy)
      for (int64_t ox = 0; ox < t.ow(); ++ox)
        for (int64_t o = 0; o < t.o; ++o) {
          double acc = t.bias ? b[o] : 0.0;
          for (int64_t ky = 0; ky < t.kh; ++ky)
            for (int64_t kx = 0; kx < t.kw; ++kx) {
              const int64_t iy = oy * t.strideH - t.padT + ky, ix = ox * t.strideW - t.padL + kx;
              if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
              for (int64_t c = 0; c < t.c; ++c)
                acc += double(x[((n * t.h + iy) * t.w + ix) * t.c + c]) *
                       w[((o * t.c + c) * t.kh + ky) * t.kw + kx];
            }
          y[((n * t.oh() + oy) * t.ow() + ox) * t.o + o] = kiln::test::applyPost(acc, p);
        }
  return y;
}

// Whether the conv shim runs t on the direct conv (forced onto it by the fixtures below).
bool runsDirect(const StemCase &t) {
  const int64_t xd[] = {t.n, t.c, t.h, t.w}, wd[] = {t.o, t.c, t.kh, t.kw},
                yd[] = {t.n, t.o, t.oh(), t.ow()};
  return kiln::rt::directConvWanted(xd, wd, yd, nullptr, params(t));
}

// Every conv the kernel can run goes to it, whatever the CPU's widest ISA.
class ForcedDirect {
public:
  ForcedDirect() { kiln::rt::forceKilnDirectConv(1); }
  ~ForcedDirect() { kiln::rt::forceKilnDirectConv(-1); }
};

class DirectConv : public ::testing::TestWithParam<std::tuple<StemCase, int>> {
  ForcedDirect forced_;
};

int conv(kiln::rt::Runner &r, const StemCase &t, const std::vector<float> &x, const float *w,
         const std::vector<float> &b, std::vector<float> &y) {
  const kiln_conv_params_v1 p = params(t);
  const int64_t xd[] = {t.n, t.c, t.h, t.w}, wd[] = {t.o, t.c, t.kh, t.kw},
                yd[] = {t.n, t.o, t.oh(), t.ow()};
  y.assign(t.n * t.oh() * t.ow() * t.o, -123.f);
  return kiln::rt::convForward(r, 3, x.data(), xd, w, wd, t.bias ? b.data() : nullptr, nullptr,
                               y.data(), yd, p, kiln::rt::ConvLayout::ChannelsLast);
}

// Inputs and weights in [-1, 1], at most 11 x 11 x 4 products: float32 sums stay within
// ~1e-5 of the float64 ones.
void expectClose(const std::vector<float> &got, const std::vector<double> &want,
                 const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-5 * std::max(1.0, std::abs(want[i]))) << what << " at " << i;
}

TEST_P(DirectConv, MatchesFloat64Reference) {
  const StemCase t = std::get<0>(GetParam());
  ThreadCount threads(std::get<1>(GetParam()));
  const kiln_conv_params_v1 p = params(t);
  if (!runsDirect(t)) GTEST_SKIP() << "the direct conv needs AVX2 + FMA";
  std::mt19937 rng(static_cast<unsigned>(t.c * 31 + t.o * 7 + t.kh * 3 + t.h));
  auto x = randomVector(rng, t.n * t.h * t.w * t.c), w = randomVector(rng, t.o * t.c * t.kh * t.kw),
       b = randomVector(rng, t.o);
  kiln::rt::Runner r;
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  std::vector<float> y;
  ASSERT_EQ(conv(r, t, x, w.data(), b, y), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, x, w, b, p), t.describe());
  std::vector<float> data = w; // weights that are data, not a constant: packed per call
  ASSERT_EQ(conv(r, t, x, data.data(), b, y), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, x, w, b, p), "data weights " + t.describe());
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DirectConv,
    ::testing::Combine(
        ::testing::Values(
            // MobileNetV2's and ResNet's stems (maps scaled down): the compiled-in trip counts.
            StemCase{1, 3, 30, 30, 32, 3, 3, 2, 2, 1, 1, 1, 1, true, KILN_POST_CLIP},
            StemCase{2, 3, 37, 41, 64, 7, 7, 2, 2, 3, 3, 3, 3, true, KILN_POST_RELU},
            // One channel, stride 1, a 5x5 window, asymmetric pads, no bias.
            StemCase{1, 1, 9, 13, 16, 5, 5, 1, 1, 2, 0, 1, 3, false, KILN_POST_NONE},
            // Four channels, strides 3 x 2, a 3 x 7 window, 48 outputs.
            StemCase{1, 4, 20, 26, 48, 3, 7, 3, 2, 1, 3, 0, 2, true, KILN_POST_CLIP},
            // 6 output columns, all in one tile over both edges; an 11 x 11 window.
            StemCase{1, 2, 12, 6, 16, 11, 11, 1, 1, 5, 5, 5, 5, true, KILN_POST_RELU},
            // 7 columns: the last tile overlaps the first; pads wider than a stride.
            StemCase{3, 3, 8, 11, 32, 3, 3, 2, 2, 2, 2, 2, 2, true, KILN_POST_NONE}),
        ::testing::Values(1, 2)));

class DirectConvKernel : public ::testing::Test {
  ForcedDirect forced_;
};

TEST_F(DirectConvKernel, NaNPropagatesThroughTheClamp) {
  StemCase t{1, 3, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1, 1, true, KILN_POST_CLIP};
  if (!runsDirect(t)) GTEST_SKIP() << "the direct conv needs AVX2 + FMA";
  std::mt19937 rng(4);
  auto x = randomVector(rng, 12 * 12 * 3), w = randomVector(rng, 16 * 27),
       b = randomVector(rng, 16);
  x[(5 * 12 + 5) * 3 + 1] = std::nanf(""); // pixel (5, 5), channel 1
  kiln::rt::Runner r;
  std::vector<float> y;
  ASSERT_EQ(conv(r, t, x, w.data(), b, y), KILN_OK) << kiln_rt_last_error();
  for (int64_t oy = 0; oy < 12; ++oy)
    for (int64_t ox = 0; ox < 12; ++ox) {
      const bool sees = std::abs(oy - 5) <= 1 && std::abs(ox - 5) <= 1;
      EXPECT_EQ(std::isnan(y[(oy * 12 + ox) * 16 + 7]), sees) << oy << "," << ox;
    }
}

// Packed weights are reused while the constant set stays (an in-place edit without a new
// token is not seen: proof the cache is used) and dropped when the token changes.
TEST_F(DirectConvKernel, PackedWeightsFollowConstantSwaps) {
  StemCase t{1, 3, 16, 16, 32, 3, 3, 2, 2, 1, 1, 1, 1, true, KILN_POST_NONE};
  const kiln_conv_params_v1 p = params(t);
  if (!runsDirect(t)) GTEST_SKIP() << "the direct conv needs AVX2 + FMA";
  std::mt19937 rng(8);
  auto x = randomVector(rng, 16 * 16 * 3), w = randomVector(rng, 32 * 27),
       b = randomVector(rng, 32);
  kiln::rt::Runner r;
  r.useConstants(reinterpret_cast<const char *>(w.data()), w.size() * 4, 1);
  std::vector<float> y;
  ASSERT_EQ(conv(r, t, x, w.data(), b, y), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, x, w, b, p), "first run");
  const auto wOld = w;
  for (float &v : w)
    v = -v;
  ASSERT_EQ(conv(r, t, x, w.data(), b, y), KILN_OK);
  expectClose(y, reference(t, x, wOld, b, p), "same token: the cached packing");
  r.useConstants(reinterpret_cast<const char *>(w.data()), w.size() * 4, 2);
  ASSERT_EQ(conv(r, t, x, w.data(), b, y), KILN_OK);
  expectClose(y, reference(t, x, w, b, p), "new token");
}

TEST(DirectConvRoute, TakesStemsWhereAvx2IsTheWidestIsa) {
  StemCase t{1, 3, 224, 224, 32, 3, 3, 2, 2, 1, 1, 1, 1, true, KILN_POST_CLIP};
  kiln_conv_params_v1 p = params(t);
  const int64_t x[] = {1, 3, 224, 224}, w[] = {32, 3, 3, 3}, y[] = {1, 32, 112, 112};
  EXPECT_EQ(kiln::rt::directConvWanted(x, w, y, nullptr, p), kiln::rt::usableIsaBits() == 256);
  kiln::rt::forceKilnDirectConv(1); // every shape the kernel can run, whatever the ISA
  if (kiln::rt::cpuIsaBits() >= 256 && kiln::rt::isaCapBits() >= 256) {
    EXPECT_TRUE(kiln::rt::directConvWanted(x, w, y, nullptr, p));
  }
  float residual = 0;
  EXPECT_FALSE(kiln::rt::directConvWanted(x, w, y, &residual, p)); // a residual: oneDNN
  const int64_t x5[] = {1, 5, 224, 224}, w5[] = {32, 5, 3, 3};     // 5 input channels
  EXPECT_FALSE(kiln::rt::directConvWanted(x5, w5, y, nullptr, p));
  const int64_t w24[] = {24, 3, 3, 3}, y24[] = {1, 24, 112, 112}; // outputs not 16k
  EXPECT_FALSE(kiln::rt::directConvWanted(x, w24, y24, nullptr, p));
  const int64_t wBig[] = {32, 3, 13, 13}, yBig[] = {1, 32, 107, 107}; // window over 11
  EXPECT_FALSE(kiln::rt::directConvWanted(x, wBig, yBig, nullptr, p));
  const int64_t yWrong[] = {1, 32, 113, 112}; // not the size the pads give
  EXPECT_FALSE(kiln::rt::directConvWanted(x, w, yWrong, nullptr, p));
  const int64_t xSmall[] = {1, 3, 8, 8}, ySmall[] = {1, 32, 4, 4}; // 4 output columns
  EXPECT_FALSE(kiln::rt::directConvWanted(xSmall, w, ySmall, nullptr, p));
  kiln_conv_params_v1 dilated = p;
  dilated.dilations[1] = 2;
  const int64_t yDil[] = {1, 32, 112, 111};
  EXPECT_FALSE(kiln::rt::directConvWanted(x, w, yDil, nullptr, dilated));
  kiln_conv_params_v1 grouped = p;
  grouped.groups = 3;
  const int64_t wg[] = {32, 1, 3, 3};
  EXPECT_FALSE(kiln::rt::directConvWanted(x, wg, y, nullptr, grouped));
  kiln::rt::forceKilnDirectConv(0);
  EXPECT_FALSE(kiln::rt::directConvWanted(x, w, y, nullptr, p));
  kiln::rt::forceKilnDirectConv(-1);
}

} // namespace
