// kiln_shim_conv_chain_v1 (an inverted-residual block run band by band) against a float64
// reference of its three (or two) convs: strides, pads, post-ops, residual, batches, band
// sizes from one output row to the whole map, packed (constant) and plain weights, and the
// errors a bad call gets.
#include "conv_chain.h"
#include "shim_conv.h"
#include "shim_matmul.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace {

using kiln::test::randomVector;

struct ChainCase {
  int64_t n, cin, h, w, ce, cout, stride, padTop, padLeft, padBottom, padRight;
  bool expand, residual;
  int32_t post[3]; // kiln_post_op of expand (ignored without), depthwise, project
  int64_t oh() const { return (h + padTop + padBottom - 3) / stride + 1; }
  int64_t ow() const { return (w + padLeft + padRight - 3) / stride + 1; }
  int count() const { return expand ? 3 : 2; }
  std::string describe() const {
    return "n" + std::to_string(n) + " " + std::to_string(cin) + "->" + std::to_string(ce) + "->" +
           std::to_string(cout) + " " + std::to_string(h) + "x" + std::to_string(w) + " s" +
           std::to_string(stride) + (expand ? " expand" : "") + (residual ? " residual" : "");
  }
};

double post(double v, int32_t op) {
  if (op == KILN_POST_RELU) return std::max(v, 0.0);
  if (op == KILN_POST_CLIP) return std::min(std::max(v, 0.0), 6.0);
  return v;
}

// The chain's tensors: x NHWC; weights ONNX layout; y NHWC.
struct ChainData {
  std::vector<float> x, wE, bE, wD, bD, wP, bP, residual;
};

ChainData makeData(const ChainCase &t, std::mt19937 &rng) {
  ChainData d;
  // Weights scaled by 1/sqrt(fan-in) keep every activation O(1), so one absolute tolerance
  // fits all layers.
  auto scaled = [&](size_t count, int64_t fanIn) {
    auto v = randomVector(rng, count);
    for (float &f : v)
      f /= std::sqrt(float(fanIn));
    return v;
  };
  d.x = randomVector(rng, t.n * t.h * t.w * t.cin);
  d.wE = scaled(t.ce * t.cin, t.cin);
  d.bE = randomVector(rng, t.ce);
  d.wD = scaled(t.ce * 9, 9);
  d.bD = randomVector(rng, t.ce);
  d.wP = scaled(t.cout * t.ce, t.ce);
  d.bP = randomVector(rng, t.cout);
  if (t.residual) d.residual = randomVector(rng, t.n * t.oh() * t.ow() * t.cout);
  return d;
}

std::vector<double> reference(const ChainCase &t, const ChainData &d) {
  // Expand (or the input itself), NHWC.
  std::vector<double> e(t.n * t.h * t.w * t.ce);
  for (int64_t p = 0; p < t.n * t.h * t.w; ++p)
    for (int64_t c = 0; c < t.ce; ++c) {
      if (!t.expand) {
        e[p * t.ce + c] = d.x[p * t.cin + c];
        continue;
      }
      double acc = d.bE[c];
      for (int64_t k = 0; k < t.cin; ++k)
        acc += double(d.x[p * t.cin + k]) * d.wE[c * t.cin + k];
      e[p * t.ce + c] = post(acc, t.post[0]);
    }
  const int64_t oh = t.oh(), ow = t.ow();
  std::vector<double> f(t.n * oh * ow * t.ce);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (int64_t c = 0; c < t.ce; ++c) {
          double acc = d.bD[c];
          for (int kh = 0; kh < 3; ++kh)
            for (int kw = 0; kw < 3; ++kw) {
              int64_t iy = oy * t.stride - t.padTop + kh, ix = ox * t.stride - t.padLeft + kw;
              if (iy < 0 || iy >= t.h || ix < 0 || ix >= t.w) continue;
              acc += e[((n * t.h + iy) * t.w + ix) * t.ce + c] * d.wD[c * 9 + kh * 3 + kw];
            }
          f[((n * oh + oy) * ow + ox) * t.ce + c] = post(acc, t.post[1]);
        }
  std::vector<double> y(t.n * oh * ow * t.cout);
  for (int64_t p = 0; p < t.n * oh * ow; ++p)
    for (int64_t c = 0; c < t.cout; ++c) {
      double acc = d.bP[c] + (t.residual ? d.residual[p * t.cout + c] : 0.0);
      for (int64_t k = 0; k < t.ce; ++k)
        acc += f[p * t.ce + k] * d.wP[c * t.ce + k];
      y[p * t.cout + c] = post(acc, t.post[2]);
    }
  return y;
}

kiln_conv_params_v1 convParams(int64_t groups, int64_t stride, const int64_t pads[4],
                               int32_t postOp) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = groups;
  p.post_op = postOp;
  p.clip_min = 0.f;
  p.clip_max = 6.f;
  for (int i = 0; i < 2; ++i) {
    p.strides[i] = stride;
    p.dilations[i] = 1;
    p.pads_begin[i] = pads[i];
    p.pads_end[i] = pads[2 + i];
  }
  return p;
}

struct ChainCall {
  int64_t xd[4], wd[12], yd[4];
  const float *w[3], *b[3];
  kiln_conv_chain_params_v1 p{};
};

ChainCall makeCall(const ChainCase &t, const ChainData &d) {
  ChainCall c{{t.n, t.cin, t.h, t.w}, {}, {t.n, t.cout, t.oh(), t.ow()}, {}, {}};
  const int64_t none[4] = {0, 0, 0, 0}, pads[4] = {t.padTop, t.padLeft, t.padBottom, t.padRight};
  int i = 0;
  c.p.count = t.count();
  if (t.expand) {
    const int64_t dims[4] = {t.ce, t.cin, 1, 1};
    std::copy(dims, dims + 4, c.wd);
    c.w[0] = d.wE.data();
    c.b[0] = d.bE.data();
    c.p.conv[i++] = convParams(1, 1, none, t.post[0]);
  }
  const int64_t dwDims[4] = {t.ce, 1, 3, 3}, pwDims[4] = {t.cout, t.ce, 1, 1};
  std::copy(dwDims, dwDims + 4, c.wd + 4 * i);
  c.w[i] = d.wD.data();
  c.b[i] = d.bD.data();
  c.p.conv[i++] = convParams(t.ce, t.stride, pads, t.post[1]);
  std::copy(pwDims, pwDims + 4, c.wd + 4 * i);
  c.w[i] = d.wP.data();
  c.b[i] = d.bP.data();
  c.p.conv[i] = convParams(1, 1, none, t.post[2]);
  return c;
}

// Every output is a sum of at most ~60 O(1) products after O(1)-scaled layers; float32
// rounding stays below 1e-5 there, while a wrong halo row, pad or band edge is off by O(0.1).
void expectClose(const std::vector<float> &got, const std::vector<double> &want,
                 const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4) << what << " at " << i;
}

std::vector<ChainCase> cases() {
  const int32_t none = KILN_POST_NONE, clip = KILN_POST_CLIP, relu = KILN_POST_RELU;
  return {
      // MobileNetV2's shapes, scaled down: residual stride-1 block, stride-2 block.
      {1, 8, 13, 11, 48, 8, 1, 1, 1, 1, 1, true, true, {clip, clip, none}},
      {2, 6, 14, 9, 36, 10, 2, 1, 1, 1, 1, true, false, {clip, clip, none}},
      // Asymmetric pads (TF-style "same" at stride 2), odd sizes, relu on the projection.
      {1, 5, 9, 12, 20, 7, 2, 0, 0, 1, 1, true, false, {relu, none, relu}},
      {1, 4, 7, 7, 16, 4, 1, 0, 1, 1, 0, true, true, {none, relu, none}},
      // Depthwise then pointwise (count 2), with and without a residual.
      {1, 24, 10, 10, 24, 16, 1, 1, 1, 1, 1, false, false, {none, clip, none}},
      {2, 17, 6, 5, 17, 3, 2, 1, 1, 1, 1, false, false, {none, relu, clip}},
      {1, 16, 8, 8, 16, 16, 1, 1, 1, 1, 1, false, true, {none, clip, none}},
      // One row and one column.
      {1, 3, 1, 1, 8, 3, 1, 1, 1, 1, 1, true, true, {clip, clip, none}},
  };
}

class ConvChainShim : public ::testing::Test {
protected:
  int run(const ChainCase &t, const ChainData &d, std::vector<float> &y, size_t budget,
          int64_t laneRows = 0) {
    ChainCall c = makeCall(t, d);
    y.assign(t.n * t.oh() * t.ow() * t.cout, -123.f);
    return kiln::rt::convChainForward(r_, 3, d.x.data(), c.xd, c.w, c.wd, c.b,
                                      t.residual ? d.residual.data() : nullptr, y.data(), c.yd, c.p,
                                      kiln::rt::ChainSchedule{budget, laneRows, blocks_});
  }
  kiln::rt::Runner r_;
  bool blocks_ = true; // ChainSchedule::expandInBlocks
};

// Bands of one output row (the halo kept from band to band), of a few rows, and the whole
// map must all give the float64 result.
TEST_F(ConvChainShim, MatchesFloat64ReferenceAtEveryBandSize) {
  std::mt19937 rng(21);
  for (const ChainCase &t : cases()) {
    ChainData d = makeData(t, rng);
    const auto want = reference(t, d);
    for (size_t budget : {size_t(1), size_t(4 * t.w * t.ce * 4), size_t(1) << 30}) {
      std::vector<float> y;
      ASSERT_EQ(run(t, d, y, budget), KILN_OK) << t.describe() << ": " << kiln_rt_last_error();
      expectClose(y, want, t.describe() + " budget " + std::to_string(budget));
    }
  }
}

// Lanes: each of 2 or 3 threads runs its own share of the rows (across image boundaries
// at batch 2) with its own runner and buffers; shares of one row up to whole images.
TEST_F(ConvChainShim, LanesMatchFloat64Reference) {
  const int saved = omp_get_max_threads();
  std::mt19937 rng(22);
  for (int threads : {2, 3}) {
    omp_set_num_threads(threads);
    for (const ChainCase &t : cases()) {
      ChainData d = makeData(t, rng);
      const auto want = reference(t, d);
      for (size_t budget : {size_t(1), size_t(1) << 30}) {
        std::vector<float> y;
        ASSERT_EQ(run(t, d, y, budget, 1), KILN_OK) << t.describe() << ": " << kiln_rt_last_error();
        expectClose(y, want,
                    t.describe() + " lanes " + std::to_string(threads) + " budget " +
                        std::to_string(budget));
      }
    }
  }
  omp_set_num_threads(saved);
}

// Lanes share the runner's weight store: constant weights are packed once for all of them,
// and a new constant set (token) reaches every lane.
TEST_F(ConvChainShim, LanesFollowConstantSwaps) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  std::mt19937 rng(24);
  const ChainCase t = cases()[0];
  ChainData d = makeData(t, rng);
  for (const std::vector<float> *v : {&d.wE, &d.wD, &d.wP})
    r_.constantRanges.emplace_back(reinterpret_cast<const char *>(v->data()), v->size() * 4);
  std::vector<float> y;
  ASSERT_EQ(run(t, d, y, 1, 1), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, d), "first run");
  const size_t packed = r_.dnnl.store().size();
  ASSERT_EQ(run(t, d, y, 1, 1), KILN_OK);
  EXPECT_EQ(r_.dnnl.store().size(), packed) << "a second run packed again";

  for (float &v : d.wP)
    v = -v;
  r_.useConstants(nullptr, 0, r_.weightsToken + 1); // a run after a constant update
  ASSERT_EQ(run(t, d, y, 1, 1), KILN_OK) << kiln_rt_last_error();
  expectClose(y, reference(t, d), "after the constant update");
  omp_set_num_threads(saved);
}

// Constant weights take the packed paths (oneDNN's blocked B, kiln's depthwise packing);
// repeated runs reuse them.
TEST_F(ConvChainShim, ConstantWeightsArePackedAndReused) {
  std::mt19937 rng(23);
  const ChainCase t = cases()[0];
  ChainData d = makeData(t, rng);
  for (const std::vector<float> *v : {&d.wE, &d.wD, &d.wP})
    r_.constantRanges.emplace_back(reinterpret_cast<const char *>(v->data()), v->size() * 4);
  const auto want = reference(t, d);
  for (int i = 0; i < 3; ++i) {
    std::vector<float> y;
    ASSERT_EQ(run(t, d, y, 8 * t.w * t.ce * 4), KILN_OK) << kiln_rt_last_error();
    expectClose(y, want, "constant weights, run " + std::to_string(i));
  }
}

// Constant weights, whole 16-channel blocks and K the AVX2 GEMM takes: the expansion writes
// its rows in channel blocks for the depthwise conv (ChainSchedule::expandInBlocks). At every
// band size, in lanes and not, both strides, with a residual: the float64 result, and bit for
// bit what NHWC rows give (the same GEMM tiles and depthwise arithmetic, another layout).
TEST_F(ConvChainShim, ExpansionInChannelBlocksMatchesFloat64) {
  const int32_t none = KILN_POST_NONE, clip = KILN_POST_CLIP;
  const ChainCase blockCases[] = {
      {1, 16, 13, 11, 48, 16, 1, 1, 1, 1, 1, true, true, {clip, clip, none}},
      {2, 24, 14, 9, 96, 24, 2, 1, 1, 1, 1, true, false, {clip, clip, none}},
      {1, 32, 7, 7, 32, 32, 1, 1, 1, 1, 1, true, true, {none, clip, none}},
      {1, 40, 10, 3, 64, 8, 2, 0, 0, 1, 1, true, false, {clip, none, clip}},
  };
  const int saved = omp_get_max_threads();
  std::mt19937 rng(26);
  for (const ChainCase &t : blockCases) {
    ChainData d = makeData(t, rng);
    for (const std::vector<float> *v : {&d.wE, &d.wD, &d.wP})
      r_.constantRanges.emplace_back(reinterpret_cast<const char *>(v->data()), v->size() * 4);
    const int64_t noPads[4] = {0, 0, 0, 0};
    const kiln_matmul_params_v1 e =
        kiln::rt::pointwiseGemm(t.w, t.cin, t.ce, true, convParams(1, 1, noPads, t.post[0]));
    if (!kiln::rt::ownGemmBlocksFit(e, true))
      GTEST_SKIP() << "the expansion does not run on kiln's AVX2 GEMM here (AVX-512 tiles)";
    const auto want = reference(t, d);
    for (int threads : {1, 2})
      for (int64_t laneRows : {0, 1})
        for (size_t budget : {size_t(1), size_t(4 * t.w * t.ce * 4), size_t(1) << 30}) {
          omp_set_num_threads(threads);
          const std::string what = t.describe() + " threads " + std::to_string(threads) +
                                   " lanes " + std::to_string(laneRows) + " budget " +
                                   std::to_string(budget);
          std::vector<float> y, nhwc;
          blocks_ = true;
          ASSERT_EQ(run(t, d, y, budget, laneRows), KILN_OK) << what << kiln_rt_last_error();
          expectClose(y, want, what);
          blocks_ = false;
          ASSERT_EQ(run(t, d, nhwc, budget, laneRows), KILN_OK) << what;
          ASSERT_EQ(y, nhwc) << what << ": the two layouts differ";
        }
    r_.constantRanges.clear();
  }
  blocks_ = true;
  omp_set_num_threads(saved);
}

TEST_F(ConvChainShim, NaNInTheInputReachesOnlyItsNeighbourhood) {
  std::mt19937 rng(25);
  ChainCase t = cases()[0];
  t.residual = false;
  t.post[0] = t.post[1] = KILN_POST_NONE;
  ChainData d = makeData(t, rng);
  const int64_t cy = 6, cx = 5;
  d.x[(cy * t.w + cx) * t.cin] = std::nanf("");
  std::vector<float> y;
  ASSERT_EQ(run(t, d, y, 1), KILN_OK);
  for (int64_t oy = 0; oy < t.oh(); ++oy)
    for (int64_t ox = 0; ox < t.ow(); ++ox) {
      bool near = std::abs(oy - cy) <= 1 && std::abs(ox - cx) <= 1;
      EXPECT_EQ(std::isnan(y[(oy * t.ow() + ox) * t.cout]), near) << oy << "," << ox;
    }
}

TEST(ConvChainShimErrors, BadCallsGetInvalidArgument) {
  kiln_shim_ctx *ctx = nullptr;
  ASSERT_EQ(kiln_rt_runner_create(&ctx), KILN_OK);
  std::mt19937 rng(27);
  const ChainCase t = cases()[1];
  ChainData d = makeData(t, rng);
  std::vector<float> y(t.n * t.oh() * t.ow() * t.cout);
  auto call = [&](ChainCall c) {
    return kiln_shim_conv_chain_v1(ctx, 5, d.x.data(), c.xd, c.w, c.wd, c.b, nullptr, y.data(),
                                   c.yd, &c.p);
  };
  ASSERT_EQ(call(makeCall(t, d)), KILN_OK) << kiln_rt_last_error();

  ChainCall c = makeCall(t, d);
  c.p.count = 4;
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("count 4"), std::string::npos);
  c = makeCall(t, d);
  c.yd[2] += 1; // output rows the depthwise conv does not give
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("site 5"), std::string::npos);
  c = makeCall(t, d);
  c.wd[4 + 2] = 5; // a 5x3 depthwise kernel
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  c = makeCall(t, d);
  c.p.conv[0].strides[0] = 2; // a strided expansion
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  c = makeCall(t, d);
  c.wd[9] = t.ce + 1; // the projection's input channels
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  c = makeCall(t, d);
  c.p.conv[1].pads_begin[0] = 2;
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  c = makeCall(t, d);
  c.p.conv[2].post_op = 99;
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  c = makeCall(t, d);
  c.w[1] = nullptr;
  EXPECT_EQ(call(c), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("NULL weight 1"), std::string::npos);
  c = makeCall(t, d);
  EXPECT_EQ(kiln_shim_conv_chain_v1(ctx, 5, d.x.data(), c.xd, c.w, c.wd, c.b, nullptr, y.data(),
                                    c.yd, nullptr),
            KILN_ERR_INVALID_ARGUMENT);
  kiln_rt_runner_destroy(ctx);
}

} // namespace
