// Channels-last KxK convs on few pixels through the conv shim, which with AVX2 or AVX-512 runs
// them as one GEMM over their patches (conv_patch_gemm.cpp), against a float64 reference: pads
// (symmetric and not), strides, dilation, batches, bias, ReLU/clip, a residual beside the
// output and one in place, weights a constant (the route) or not (oneDNN); and which convs
// the route takes. Each case runs at 1 and 2 threads.
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

struct PatchCase {
  int64_t n, cin, h, w, cout, kh, kw, stride, dilation, padT, padL, padB, padR;
  bool bias;
  int residual; // 0 none, 1 a tensor of its own, 2 in place (the output holds it)
  int32_t post;
  bool constantWeights;
  bool avx2Only = false; // a strided conv of many pixels: the route only where AVX2 is widest
  int64_t oh() const { return (h + padT + padB - dilation * (kh - 1) - 1) / stride + 1; }
  int64_t ow() const { return (w + padL + padR - dilation * (kw - 1) - 1) / stride + 1; }
  std::string describe() const {
    return "n" + std::to_string(n) + " " + std::to_string(cin) + "->" + std::to_string(cout) + " " +
           std::to_string(h) + "x" + std::to_string(w) + " k" + std::to_string(kh) + "x" +
           std::to_string(kw) + " s" + std::to_string(stride) + " d" + std::to_string(dilation) +
           " residual " + std::to_string(residual) + " post " + std::to_string(post);
  }
};

kiln_conv_params_v1 params(const PatchCase &t) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  p.strides[0] = p.strides[1] = t.stride;
  p.dilations[0] = p.dilations[1] = t.dilation;
  p.pads_begin[0] = t.padT;
  p.pads_begin[1] = t.padL;
  p.pads_end[0] = t.padB;
  p.pads_end[1] = t.padR;
  p.post_op = t.post;
  p.clip_min = -0.5f;
  p.clip_max = 0.75f;
  return p;
}

class ConvPatchGemm : public ::testing::TestWithParam<std::tuple<PatchCase, int>> {
protected:
  kiln::rt::Runner r_;
};

TEST_P(ConvPatchGemm, MatchesFloat64Reference) {
  const PatchCase t = std::get<0>(GetParam());
  ThreadCount threads(std::get<1>(GetParam()));
  SCOPED_TRACE(t.describe() + " threads " + std::to_string(std::get<1>(GetParam())));
  std::mt19937 rng(static_cast<unsigned>(t.cin * 131 + t.cout * 7 + t.h * 3 + t.kh));
  std::vector<float> x = randomVector(rng, t.n * t.h * t.w * t.cin);
  std::vector<float> w = randomVector(rng, t.cout * t.cin * t.kh * t.kw);
  for (float &v : w)
    v /= std::sqrt(float(t.cin * t.kh * t.kw)); // outputs O(1): one tolerance fits all
  std::vector<float> bias = randomVector(rng, t.cout);
  const int64_t outCount = t.n * t.oh() * t.ow() * t.cout;
  std::vector<float> residual = randomVector(rng, outCount);
  std::vector<float> y(outCount, 0.f);
  if (t.constantWeights)
    r_.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);

  const kiln_conv_params_v1 p = params(t);
  const int64_t xDims[] = {t.n, t.cin, t.h, t.w}, wDims[] = {t.cout, t.cin, t.kh, t.kw},
                yDims[] = {t.n, t.cout, t.oh(), t.ow()};
  const float *res = t.residual == 1 ? residual.data() : t.residual == 2 ? y.data() : nullptr;
  // The route must be what this test exercises: with AVX2 or AVX-512 and constant weights
  // every case here is a GEMM over patches (the AVX2-only one where AVX2 is the widest ISA).
  const int isa = kiln::rt::usableIsaBits();
  EXPECT_EQ(t.constantWeights && kiln::rt::patchGemmWanted(wDims, yDims, p, res, y.data()),
            t.constantWeights && kiln::rt::ownGemmRouteOn() &&
                (isa == 256 || (isa == 512 && !t.avx2Only)));
  // Twice: the second call runs on the cached, packed weights.
  for (int call = 0; call < 2; ++call) {
    std::fill(y.begin(), y.end(), 0.f);
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
          double acc = t.bias ? bias[o] : 0.0;
          for (int64_t a = 0; a < t.kh; ++a)
            for (int64_t b = 0; b < t.kw; ++b) {
              const int64_t ih = i * t.stride - t.padT + a * t.dilation;
              const int64_t iw = j * t.stride - t.padL + b * t.dilation;
              if (ih < 0 || ih >= t.h || iw < 0 || iw >= t.w) continue;
              const float *px = &x[((img * t.h + ih) * t.w + iw) * t.cin];
              for (int64_t c = 0; c < t.cin; ++c)
                acc += double(px[c]) * w[((o * t.cin + c) * t.kh + a) * t.kw + b];
            }
          const int64_t at = ((img * t.oh() + i) * t.ow() + j) * t.cout + o;
          if (t.residual) acc += residual[at];
          worst = std::max(worst, std::abs(kiln::test::applyPost(acc, p) - y[at]));
        }
  // Float32 sums of at most 9 x 64 O(1 / sqrt(depth)) products: errors of a few 1e-7.
  EXPECT_LT(worst, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvPatchGemm,
    ::testing::Combine(
        ::testing::Values(
            // ResNet-50's layer4 3x3 conv, scaled down in channels; stride 2 as its first.
            PatchCase{1, 32, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, true, 0, KILN_POST_RELU, true},
            PatchCase{1, 32, 14, 14, 520, 3, 3, 2, 1, 1, 1, 1, 1, true, 1, KILN_POST_RELU, true},
            // Asymmetric pads, a 5x5 window, in-place residual, clip; two images.
            PatchCase{2, 16, 5, 6, 512, 5, 5, 1, 1, 2, 1, 1, 3, false, 2, KILN_POST_CLIP, true},
            // Dilation 2 and no pads; 3 x 5 window.
            PatchCase{1, 24, 9, 11, 528, 3, 5, 1, 2, 0, 0, 0, 0, true, 1, KILN_POST_NONE, true},
            // Non-overlapping 8x8 patches (ViT's patch embedding, scaled down): 120 pixels,
            // past the 64-pixel limit of overlapping windows.
            PatchCase{1, 4, 80, 96, 512, 8, 8, 8, 1, 0, 0, 0, 0, true, 0, KILN_POST_NONE, true},
            // A strided 3x3 conv of 380 pixels and 1152-float windows into 128 outputs,
            // asymmetric pads, in-place residual (ResNet's first conv of a stage).
            PatchCase{1, 128, 40, 39, 128, 3, 3, 2, 1, 1, 0, 0, 1, true, 2, KILN_POST_RELU, true,
                      true},
            // Weights not a constant: oneDNN's conv, the same answer.
            PatchCase{1, 32, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, true, 1, KILN_POST_RELU, false}),
        ::testing::Values(1, 2)));

// A constant updated in place must not leave a stale packed copy behind: the runner drops
// derived weights when the container's constants token changes (Runner::useConstants).
TEST(ConvPatchGemm, PackedWeightsFollowAConstantUpdate) {
  const PatchCase t{1, 32, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, false, 0, KILN_POST_NONE, true};
  const kiln_conv_params_v1 p = params(t);
  const int64_t xDims[] = {1, 32, 7, 7}, wDims[] = {512, 32, 3, 3}, yDims[] = {1, 512, 7, 7};
  if (!kiln::rt::patchGemmWanted(wDims, yDims, p, nullptr, nullptr))
    GTEST_SKIP() << "the patch GEMM route needs AVX2 or AVX-512";
  std::mt19937 rng(3);
  std::vector<float> x = randomVector(rng, 7 * 7 * 32), w = randomVector(rng, 512 * 32 * 9),
                     y(7 * 7 * 512);
  kiln::rt::Runner r;
  const char *base = reinterpret_cast<const char *>(w.data());
  r.useConstants(base, w.size() * 4, 1);
  // y at (pixel 24, output channel o), the window wholly inside: a float64 dot product.
  auto centre = [&](int64_t o) {
    double acc = 0;
    for (int64_t a = 0; a < 3; ++a)
      for (int64_t b = 0; b < 3; ++b)
        for (int64_t c = 0; c < 32; ++c)
          acc += double(x[((2 + a) * 7 + 2 + b) * 32 + c]) * w[((o * 32 + c) * 3 + a) * 3 + b];
    return acc;
  };
  auto run = [&] {
    ASSERT_EQ(kiln::rt::convForward(r, 4, x.data(), xDims, w.data(), wDims, nullptr, nullptr,
                                    y.data(), yDims, p, kiln::rt::ConvLayout::ChannelsLast),
              KILN_OK)
        << kiln_rt_last_error();
    for (int64_t o : {0, 17, 511})
      EXPECT_NEAR(y[24 * 512 + o], centre(o), 1e-4) << "channel " << o;
  };
  run();
  EXPECT_EQ(r.dnnl.numWeights(), 1u); // the packed copy, cached
  for (float &v : w)
    v = -2.f * v;
  r.useConstants(base, w.size() * 4, 2); // what a container run does after an update
  EXPECT_EQ(r.dnnl.numWeights(), 0u);
  run();
}

TEST(ConvPatchGemmRoute, TakesOnlyFewPixelsOfWideUngroupedConvs) {
  PatchCase t{1, 64, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, true, 0, KILN_POST_NONE, true};
  const kiln_conv_params_v1 p = params(t);
  const int64_t w3[] = {512, 64, 3, 3}, y7[] = {1, 512, 7, 7};
  const int isa = kiln::rt::ownGemmRouteOn() ? kiln::rt::usableIsaBits() : 0;
  const bool wide = isa >= 256;
  EXPECT_EQ(kiln::rt::patchGemmWanted(w3, y7, p, nullptr, nullptr), wide);
  const int64_t y9[] = {1, 512, 9, 9}; // 81 pixels: oneDNN's direct conv measured as fast
  EXPECT_FALSE(kiln::rt::patchGemmWanted(w3, y9, p, nullptr, nullptr));
  // ViT-B/16's patch embedding: 16 x 16 windows 16 apart, 196 pixels.
  kiln_conv_params_v1 patches = p;
  patches.strides[0] = patches.strides[1] = 16;
  patches.pads_begin[0] = patches.pads_begin[1] = patches.pads_end[0] = patches.pads_end[1] = 0;
  const int64_t w16[] = {768, 3, 16, 16}, y14[] = {1, 768, 14, 14};
  EXPECT_EQ(kiln::rt::patchGemmWanted(w16, y14, patches, nullptr, nullptr), wide);
  const int64_t w1[] = {512, 64, 1, 1}; // pointwise: conv_pointwise.cpp's route
  EXPECT_FALSE(kiln::rt::patchGemmWanted(w1, y7, p, nullptr, nullptr));
  const int64_t narrow[] = {256, 64, 3, 3}, y7n[] = {1, 256, 7, 7}; // O < 512
  EXPECT_FALSE(kiln::rt::patchGemmWanted(narrow, y7n, p, nullptr, nullptr));
  kiln_conv_params_v1 grouped = p;
  grouped.groups = 2;
  const int64_t wg[] = {512, 32, 3, 3};
  EXPECT_FALSE(kiln::rt::patchGemmWanted(wg, y7, grouped, nullptr, nullptr));

  // With AVX2 the widest ISA, strided convs from 128 outputs (ResNet's first 3x3 conv of a
  // stage): up to 256 pixels, and up to 1024 with windows of 1024+ floats; stride-1 maps that
  // large stay with Winograd or oneDNN.
  kiln_conv_params_v1 strided = p;
  strided.strides[0] = strided.strides[1] = 2;
  const int64_t w128[] = {128, 128, 3, 3}, y28[] = {1, 128, 28, 28}, y33[] = {1, 128, 33, 33};
  EXPECT_EQ(kiln::rt::patchGemmWanted(w128, y28, strided, nullptr, nullptr), isa == 256);
  EXPECT_FALSE(kiln::rt::patchGemmWanted(w128, y33, strided, nullptr, nullptr)); // 1089 pixels
  EXPECT_FALSE(kiln::rt::patchGemmWanted(w128, y28, p, nullptr, nullptr));       // stride 1
  const int64_t shallow[] = {128, 64, 3, 3}, y16[] = {1, 128, 16, 16};           // a window of 576
  EXPECT_FALSE(kiln::rt::patchGemmWanted(shallow, y28, strided, nullptr, nullptr));
  EXPECT_EQ(kiln::rt::patchGemmWanted(shallow, y16, strided, nullptr, nullptr), isa == 256);
  const int64_t w64[] = {64, 128, 3, 3}, y28n[] = {1, 64, 28, 28}; // 64 outputs
  EXPECT_FALSE(kiln::rt::patchGemmWanted(w64, y28n, strided, nullptr, nullptr));
}

} // namespace
