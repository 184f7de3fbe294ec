// kiln's depthwise 3x3 NHWC kernel (dwconv.h) and its route through the conv shim, against
// a float64 reference: every ISA kernel this CPU runs, borders, channel tails, strides,
// pads, post-ops; and the shim's packed-weight cache across a constant swap.
#include "dwconv.h"
#include "shim_conv.h"
#include "shim_dwconv.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace {

using kiln::rt::DwConvParams;
using kiln::rt::DwIsa;
using kiln::test::randomVector;

struct DwCase {
  int64_t n, c, h, w, stride, padTop, padLeft, padBottom, padRight;
  float lo, hi;
  bool bias;
  int64_t oh() const { return (h + padTop + padBottom - 3) / stride + 1; }
  int64_t ow() const { return (w + padLeft + padRight - 3) / stride + 1; }
  std::string describe() const {
    return "n" + std::to_string(n) + " c" + std::to_string(c) + " " + std::to_string(h) + "x" +
           std::to_string(w) + " s" + std::to_string(stride) + " pads " + std::to_string(padTop) +
           std::to_string(padLeft) + std::to_string(padBottom) + std::to_string(padRight) +
           " clip [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" + (bias ? " bias" : "");
  }
};

// x NHWC, w ONNX [C, 1, 3, 3]; y NHWC in float64.
std::vector<double> reference(const DwCase &t, const std::vector<float> &x,
                              const std::vector<float> &w, const std::vector<float> &b) {
  std::vector<double> y(t.n * t.oh() * t.ow() * t.c);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t oy = 0; oy < t.oh(); ++oy)
      for (int64_t ox = 0; ox < t.ow(); ++ox)
        for (int64_t c = 0; c < t.c; ++c) {
          double acc = t.bias ? b[c] : 0.0;
          for (int kh = 0; kh < 3; ++kh)
            for (int kw = 0; kw < 3; ++kw) {
              int64_t iy = oy * t.stride - t.padTop + kh, ix = ox * t.stride - t.padLeft + kw;
              if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
              acc += double(x[((n * t.h + iy) * t.w + ix) * t.c + c]) * w[c * 9 + kh * 3 + kw];
            }
          acc = std::min<double>(std::max<double>(acc, t.lo), t.hi);
          y[((n * t.oh() + oy) * t.ow() + ox) * t.c + c] = acc;
        }
  return y;
}

// Each term is at most 1 in magnitude (inputs in [-1, 1]); 10 float roundings of sums below
// 10 stay far under 1e-5.
void expectClose(const std::vector<float> &got, const std::vector<double> &want,
                 const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-5) << what << " at " << i;
}

std::vector<DwCase> cases() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<DwCase> v;
  std::mt19937 rng(7);
  const int64_t channels[] = {1, 5, 8, 16, 17, 40, 96};
  const int64_t sizes[] = {1, 2, 3, 4, 7, 12};
  for (int64_t c : channels)
    for (int64_t stride : {1, 2})
      for (int i = 0; i < 6; ++i) {
        DwCase t{};
        t.n = 1 + rng() % 2;
        t.c = c;
        t.h = sizes[rng() % 6];
        t.w = sizes[rng() % 6];
        t.stride = stride;
        t.padTop = rng() % 2;
        t.padLeft = rng() % 2;
        t.padBottom = rng() % 2;
        t.padRight = rng() % 2;
        int post = rng() % 3;
        t.lo = post == 0 ? -inf : 0.f;
        t.hi = post == 2 ? 0.5f : inf;
        t.bias = rng() % 4 != 0;
        if (t.h + t.padTop + t.padBottom < 3 || t.w + t.padLeft + t.padRight < 3) continue;
        v.push_back(t);
      }
  // MobileNetV2-like maps, both strides, full borders.
  v.push_back({1, 32, 28, 28, 1, 1, 1, 1, 1, 0.f, 6.f, true});
  v.push_back({1, 48, 28, 28, 2, 1, 1, 1, 1, 0.f, 6.f, true});
  v.push_back({1, 64, 7, 7, 1, 1, 1, 1, 1, 0.f, 6.f, true});
  return v;
}

void runKernel(const DwCase &t, const std::vector<float> &x, const std::vector<float> &w,
               const std::vector<float> &b, std::vector<float> &y) {
  std::vector<float> packed(9 * t.c);
  kiln::rt::packDwWeights(w.data(), t.c, packed.data());
  DwConvParams p{t.n, t.h, t.w, t.c, t.oh(), t.ow(), t.stride, t.padTop, t.padLeft, t.lo, t.hi};
  y.assign(t.n * t.oh() * t.ow() * t.c, -123.f);
  kiln::rt::dwConv3x3Nhwc(p, x.data(), packed.data(), t.bias ? b.data() : nullptr, y.data());
}

class DwKernelIsa : public ::testing::TestWithParam<DwIsa> {
protected:
  void TearDown() override { kiln::rt::forceDwIsa(DwIsa::Auto); }
};

TEST_P(DwKernelIsa, MatchesFloat64Reference) {
  if (!kiln::rt::forceDwIsa(GetParam())) GTEST_SKIP() << "this CPU cannot run the kernel";
  std::mt19937 rng(11);
  int n = 0;
  for (const DwCase &t : cases()) {
    auto x = randomVector(rng, t.n * t.h * t.w * t.c), w = randomVector(rng, t.c * 9),
         b = randomVector(rng, t.c);
    std::vector<float> y;
    runKernel(t, x, w, b, y);
    expectClose(y, reference(t, x, w, b),
                std::string(kiln::rt::activeDwKernel().name) + " " + t.describe());
    ++n;
  }
  EXPECT_GT(n, 60);
}

// The input in 16-channel blocks (DwConvParams::inBlock, as a conv chain's expansion writes
// it), the blocks further apart than the map; the output stays NHWC.
TEST_P(DwKernelIsa, BlockedInputMatchesFloat64Reference) {
  if (!kiln::rt::forceDwIsa(GetParam())) GTEST_SKIP() << "this CPU cannot run the kernel";
  std::mt19937 rng(13);
  int n = 0;
  for (const DwCase &t : cases()) {
    if (t.c % 16 != 0) continue;
    auto x = randomVector(rng, t.n * t.h * t.w * t.c), w = randomVector(rng, t.c * 9),
         b = randomVector(rng, t.c);
    const int64_t pixels = t.n * t.h * t.w, stride = pixels * 16 + 40;
    std::vector<float> blocked(t.c / 16 * stride, std::nanf(""));
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t c = 0; c < t.c; ++c)
        blocked[c / 16 * stride + p * 16 + c % 16] = x[p * t.c + c];
    std::vector<float> packed(9 * t.c);
    kiln::rt::packDwWeights(w.data(), t.c, packed.data());
    DwConvParams p{t.n, t.h, t.w, t.c, t.oh(), t.ow(), t.stride, t.padTop, t.padLeft, t.lo, t.hi};
    p.inBlock = 16;
    p.inBlockStride = stride;
    std::vector<float> y(t.n * t.oh() * t.ow() * t.c, -123.f);
    kiln::rt::dwConv3x3Nhwc(p, blocked.data(), packed.data(), t.bias ? b.data() : nullptr,
                            y.data());
    expectClose(y, reference(t, x, w, b),
                std::string(kiln::rt::activeDwKernel().name) + " blocked " + t.describe());
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST_P(DwKernelIsa, NaNPropagatesThroughTheClamp) {
  if (!kiln::rt::forceDwIsa(GetParam())) GTEST_SKIP() << "this CPU cannot run the kernel";
  DwCase t{1, 16, 5, 5, 1, 1, 1, 1, 1, 0.f, 6.f, true};
  std::mt19937 rng(3);
  auto x = randomVector(rng, 5 * 5 * 16), w = randomVector(rng, 16 * 9), b = randomVector(rng, 16);
  x[(2 * 5 + 2) * 16 + 3] = std::nanf(""); // centre pixel, channel 3
  std::vector<float> y;
  runKernel(t, x, w, b, y);
  for (int64_t oy = 1; oy <= 3; ++oy)
    for (int64_t ox = 1; ox <= 3; ++ox)
      EXPECT_TRUE(std::isnan(y[(oy * 5 + ox) * 16 + 3])) << oy << "," << ox;
  EXPECT_FALSE(std::isnan(y[(0 * 5 + 0) * 16 + 3]));
  EXPECT_FALSE(std::isnan(y[(2 * 5 + 2) * 16 + 4]));
}

INSTANTIATE_TEST_SUITE_P(Isa, DwKernelIsa,
                         ::testing::Values(DwIsa::Avx512, DwIsa::Avx2, DwIsa::Generic));

// Through the conv shim (channels-last), forced onto kiln's kernel for every shape.
class DwShim : public ::testing::Test {
protected:
  void SetUp() override { kiln::rt::forceKilnDepthwise(1); }
  void TearDown() override { kiln::rt::forceKilnDepthwise(-1); }

  int conv(kiln::rt::Runner &r, const DwCase &t, const float *x, const float *w, const float *b,
           float *y) {
    int64_t xd[4] = {t.n, t.c, t.h, t.w}, wd[4] = {t.c, 1, 3, 3},
            yd[4] = {t.n, t.c, t.oh(), t.ow()};
    kiln_conv_params_v1 p{};
    p.spatial_rank = 2;
    p.groups = t.c;
    p.post_op = KILN_POST_CLIP;
    p.clip_min = t.lo;
    p.clip_max = t.hi;
    for (int i = 0; i < 2; ++i) {
      p.strides[i] = t.stride;
      p.dilations[i] = 1;
    }
    p.pads_begin[0] = t.padTop;
    p.pads_begin[1] = t.padLeft;
    p.pads_end[0] = t.padBottom;
    p.pads_end[1] = t.padRight;
    return kiln::rt::convForward(r, 1, x, xd, w, wd, b, nullptr, y, yd, p,
                                 kiln::rt::ConvLayout::ChannelsLast);
  }
};

TEST_F(DwShim, MatchesReferenceAndOneDnn) {
  kiln::rt::Runner r;
  std::mt19937 rng(5);
  DwCase t{2, 24, 9, 10, 2, 1, 0, 1, 1, 0.f, 6.f, true};
  auto x = randomVector(rng, t.n * t.h * t.w * t.c), w = randomVector(rng, t.c * 9),
       b = randomVector(rng, t.c);
  std::vector<float> y(t.n * t.oh() * t.ow() * t.c), yDnnl(y.size());
  ASSERT_EQ(conv(r, t, x.data(), w.data(), b.data(), y.data()), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, x, w, b), "shim " + t.describe());
  kiln::rt::forceKilnDepthwise(0);
  ASSERT_EQ(conv(r, t, x.data(), w.data(), b.data(), yDnnl.data()), KILN_OK)
      << kiln_rt_last_error();
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_NEAR(y[i], yDnnl[i], 1e-5) << i;
}

// Packed weights are reused while the constant set stays (an in-place edit without a new
// token is not seen: proof the cache is used), and dropped when the token or pointer changes.
TEST_F(DwShim, PackedWeightsFollowConstantSwaps) {
  kiln::rt::Runner r;
  std::mt19937 rng(9);
  DwCase t{1, 16, 6, 6, 1, 1, 1, 1, 1, -1e30f, 1e30f, true};
  auto x = randomVector(rng, 6 * 6 * 16), w = randomVector(rng, 16 * 9),
       w2 = randomVector(rng, 16 * 9), b = randomVector(rng, 16);
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w2.data()), w2.size() * 4);
  std::vector<float> y(6 * 6 * 16);
  ASSERT_EQ(conv(r, t, x.data(), w.data(), b.data(), y.data()), KILN_OK);
  expectClose(y, reference(t, x, w, b), "first run");

  const auto wOld = w;
  for (float &v : w)
    v = -v;
  ASSERT_EQ(conv(r, t, x.data(), w.data(), b.data(), y.data()), KILN_OK);
  expectClose(y, reference(t, x, wOld, b), "same token: the cached packing");

  r.useConstants(nullptr, 0, r.weightsToken + 1); // a run after a constant update
  ASSERT_EQ(conv(r, t, x.data(), w.data(), b.data(), y.data()), KILN_OK);
  expectClose(y, reference(t, x, w, b), "new token");

  ASSERT_EQ(conv(r, t, x.data(), w2.data(), b.data(), y.data()), KILN_OK);
  expectClose(y, reference(t, x, w2, b), "other constant buffer");

  std::vector<float> data = w; // not a constant: packed on every call
  ASSERT_EQ(conv(r, t, x.data(), data.data(), b.data(), y.data()), KILN_OK);
  for (float &v : data)
    v *= 0.5f;
  ASSERT_EQ(conv(r, t, x.data(), data.data(), b.data(), y.data()), KILN_OK);
  expectClose(y, reference(t, x, data, b), "weights that are data");
}

} // namespace
