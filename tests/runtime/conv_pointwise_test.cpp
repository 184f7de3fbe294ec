// Channels-last 1x1 convolutions through the conv shim, which runs them as GEMMs
// (conv_pointwise.cpp), against a float64 reference: unit and uneven strides, batches, bias,
// ReLU/clip, a residual beside the output and one in place, constant and plain weights; and
// which convs the GEMM route takes. Each case runs at 1 and 2 threads (with AVX-512 the route
// is taken only at 2+). Registered a second time under ONEDNN_MAX_CPU_ISA=AVX2, where only
// convs of 512 pixels or more take it.
#include "isa_cap.h"
#include "shim_conv.h"
#include "shim_matmul.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

namespace {

using kiln::test::randomVector;
using kiln::test::ThreadCount;

struct PointwiseCase {
  int64_t n, cin, h, w, cout, strideH, strideW;
  bool bias;
  int residual; // 0 none, 1 a tensor of its own, 2 in place (the output holds it)
  int32_t post;
  bool constantWeights;
  int64_t oh() const { return (h - 1) / strideH + 1; }
  int64_t ow() const { return (w - 1) / strideW + 1; }
  std::string describe() const {
    return "n" + std::to_string(n) + " " + std::to_string(cin) + "->" + std::to_string(cout) + " " +
           std::to_string(h) + "x" + std::to_string(w) + " s" + std::to_string(strideH) + "," +
           std::to_string(strideW) + " residual " + std::to_string(residual) + " post " +
           std::to_string(post);
  }
};

kiln_conv_params_v1 params(const PointwiseCase &t) {
  return kiln::test::conv2dParams(t.strideH, t.strideW, {0, 0, 0, 0}, t.post, -0.5f, 0.75f);
}

class ConvPointwise : public ::testing::TestWithParam<std::tuple<PointwiseCase, int>> {
protected:
  kiln::rt::Runner r_;
};

TEST_P(ConvPointwise, MatchesFloat64Reference) {
  const PointwiseCase t = std::get<0>(GetParam());
  ThreadCount threads(std::get<1>(GetParam()));
  SCOPED_TRACE(t.describe() + " threads " + std::to_string(std::get<1>(GetParam())));
  std::mt19937 rng(static_cast<unsigned>(t.cin * 131 + t.cout * 7 + t.h));
  std::vector<float> x = randomVector(rng, t.n * t.h * t.w * t.cin);
  std::vector<float> w = randomVector(rng, t.cout * t.cin);
  for (float &v : w)
    v /= std::sqrt(float(t.cin)); // keeps outputs O(1), so one tolerance fits every case
  std::vector<float> bias = randomVector(rng, t.cout);
  const int64_t outCount = t.n * t.oh() * t.ow() * t.cout;
  std::vector<float> residual = randomVector(rng, outCount);
  std::vector<float> y(outCount, 0.f);
  if (t.residual == 2) y = residual;
  if (t.constantWeights)
    r_.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);

  const kiln_conv_params_v1 p = params(t);
  const int64_t xDims[] = {t.n, t.cin, t.h, t.w}, wDims[] = {t.cout, t.cin, 1, 1},
                yDims[] = {t.n, t.cout, t.oh(), t.ow()};
  const float *res = t.residual == 1 ? residual.data() : t.residual == 2 ? y.data() : nullptr;
  // Twice: the second call runs on the cached GEMM (and packed weights when constant).
  for (int call = 0; call < 2; ++call) {
    if (t.residual == 2) y = residual;
    ASSERT_EQ(kiln_shim_conv_v2(&r_, 1, x.data(), xDims, w.data(), wDims,
                                t.bias ? bias.data() : nullptr, res, y.data(), yDims, &p,
                                KILN_LAYOUT_CHANNELS_LAST),
              KILN_OK)
        << kiln_rt_last_error();
  }

  double worst = 0;
  for (int64_t img = 0; img < t.n; ++img)
    for (int64_t i = 0; i < t.oh(); ++i)
      for (int64_t j = 0; j < t.ow(); ++j)
        for (int64_t o = 0; o < t.cout; ++o) {
          const float *px = &x[((img * t.h + i * t.strideH) * t.w + j * t.strideW) * t.cin];
          double acc = t.bias ? bias[o] : 0.0;
          for (int64_t k = 0; k < t.cin; ++k)
            acc += double(px[k]) * w[o * t.cin + k];
          const int64_t at = ((img * t.oh() + i) * t.ow() + j) * t.cout + o;
          if (t.residual) acc += residual[at];
          worst = std::max(worst, std::abs(kiln::test::applyPost(acc, p) - y[at]));
        }
  // Float32 sums of at most 64 O(1/sqrt(cin)) products: errors of a few 1e-7.
  EXPECT_LT(worst, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvPointwise,
    ::testing::Combine(
        ::testing::Values(PointwiseCase{1, 32, 9, 7, 24, 1, 1, true, 0, KILN_POST_RELU, true},
                          PointwiseCase{2, 16, 8, 8, 40, 2, 2, true, 1, KILN_POST_RELU, true},
                          PointwiseCase{1, 20, 7, 5, 17, 2, 3, false, 2, KILN_POST_CLIP, false},
                          PointwiseCase{1, 64, 24, 24, 48, 1, 1, true, 1, KILN_POST_NONE, true},
                          PointwiseCase{2, 24, 33, 31, 16, 2, 2, true, 2, KILN_POST_RELU, false},
                          PointwiseCase{1, 8, 47, 45, 12, 2, 2, false, 1, KILN_POST_CLIP, true}),
        ::testing::Values(1, 2)));

TEST(ConvPointwiseRoute, TakesOnlyUnpaddedUngrouped1x1Convs) {
  ThreadCount threads(2);
  PointwiseCase t{1, 64, 32, 32, 64, 1, 1, true, 0, KILN_POST_NONE, false};
  kiln_conv_params_v1 p = params(t);
  const int64_t xDims[] = {1, 64, 32, 32}, w1[] = {64, 64, 1, 1}, w3[] = {64, 64, 3, 3},
                yDims[] = {1, 64, 32, 32}, ySmall[] = {1, 64, 16, 16};
  EXPECT_TRUE(kiln::rt::pointwiseAsGemm(xDims, w1, yDims, p));
  EXPECT_FALSE(kiln::rt::pointwiseAsGemm(xDims, w3, yDims, p));
  EXPECT_FALSE(kiln::rt::pointwiseAsGemm(xDims, w1, ySmall, p)); // dims don't match the strides
  kiln_conv_params_v1 padded = p;
  padded.pads_begin[0] = 1;
  EXPECT_FALSE(kiln::rt::pointwiseAsGemm(xDims, w1, yDims, padded));
  kiln_conv_params_v1 grouped = p;
  grouped.groups = 2;
  const int64_t wGrouped[] = {64, 32, 1, 1};
  EXPECT_FALSE(kiln::rt::pointwiseAsGemm(xDims, wGrouped, yDims, grouped));
  kiln_conv_params_v1 strided = p;
  strided.strides[0] = strided.strides[1] = 2;
  const int64_t xLarge[] = {1, 64, 64, 64}; // 1024 output pixels: the route on every ISA
  EXPECT_TRUE(kiln::rt::pointwiseAsGemm(xLarge, w1, yDims, strided));
  EXPECT_FALSE(kiln::rt::pointwiseAsGemm(xLarge, w1, ySmall, strided));
  // One thread: brgconv with AVX-512, the GEMM below it (1024 pixels); with a residual the
  // GEMM on every ISA (its epilogue adds it, brgconv would need a second pass).
  omp_set_num_threads(1);
  EXPECT_EQ(kiln::rt::pointwiseAsGemm(xDims, w1, yDims, p), kiln::rt::usableIsaBits() < 512);
  EXPECT_TRUE(kiln::rt::pointwiseAsGemm(xDims, w1, yDims, p, /*hasResidual=*/true));
  // With AVX-512 at 1 thread, few pixels into 512+ outputs too (the weights stream from
  // memory for a handful of rows); into 256 outputs not.
  const int64_t x7wide[] = {1, 1024, 7, 7}, y7wide[] = {1, 512, 7, 7}, w7wide[] = {512, 1024, 1, 1};
  const int64_t y7narrow[] = {1, 256, 7, 7}, w7narrow[] = {256, 1024, 1, 1};
  if (kiln::rt::usableIsaBits() == 512 && kiln::rt::ownGemmRouteOn()) {
    EXPECT_TRUE(kiln::rt::pointwiseAsGemm(x7wide, w7wide, y7wide, p));
    EXPECT_FALSE(kiln::rt::pointwiseAsGemm(x7wide, w7narrow, y7narrow, p));
  }
  // Below AVX-512 fewer than 512 pixels take it only through kiln's AVX2 GEMM (which packs its
  // weight once); oneDNN's sgemm would pack it per call.
  const int64_t x7[] = {1, 64, 7, 7}, y7[] = {1, 64, 7, 7};
  if (kiln::rt::usableIsaBits() < 512) {
    EXPECT_EQ(kiln::rt::pointwiseAsGemm(x7, w1, y7, p), kiln::rt::ownGemmRouteOn());
  }
}

} // namespace
