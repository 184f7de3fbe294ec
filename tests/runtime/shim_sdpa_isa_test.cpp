// The attention kernels of every ISA level this CPU runs (AVX-512, AVX2, generic; see
// src/runtime/sdpa_kernels.h) against a float64 reference: transformer head dims 32/64/80/128
// and odd ones, odd sequence lengths on both sides of the micro-kernel tiles and of the
// 256-key online-softmax block, padding masks (HF [B,1,1,S] with -10000, finfo.min and
// -inf, at the end or the start), causal masks (-inf and finfo.min), per-row masks read with
// a key stride of 0, sharp score distributions
// (so the running max moves between key blocks), and 1 and 2 threads.
#include "sdpa_kernels.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

namespace {

using kiln::rt::sdpa::Isa;
using kiln::test::randomVector;
using kiln::test::relL2;

enum class Mask { None, Pad10k, PadMin, PadInf, Causal, CausalMin, LeftPadMin, RowBias };

struct Case {
  int64_t B, H, Sq, Skv, D, Dv;
  Mask mask;
  float sharp; // Q is multiplied by this: larger = peakier softmax
};

std::string maskName(Mask m) {
  switch (m) {
  case Mask::None:
    return "none";
  case Mask::Pad10k:
    return "pad10k";
  case Mask::PadMin:
    return "padmin";
  case Mask::PadInf:
    return "padinf";
  case Mask::Causal:
    return "causal";
  case Mask::CausalMin:
    return "causalmin";
  case Mask::LeftPadMin:
    return "leftpadmin";
  case Mask::RowBias:
    return "rowbias";
  }
  return "?";
}

const char *isaName(Isa isa) {
  return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "generic";
}

// The mask as the shim reads it, with its [B, H, Sq, Skv] strides (0 where it broadcasts).
struct MaskData {
  std::vector<float> values;
  int64_t strides[4] = {0, 0, 0, 0};
};

MaskData makeMask(const Case &c, std::mt19937 &rng) {
  MaskData m;
  if (c.mask == Mask::Pad10k || c.mask == Mask::PadMin || c.mask == Mask::PadInf) {
    // [B,1,1,Skv]: batch b keeps its first Skv - 3b keys (at least 1) and masks the rest.
    const float fill = c.mask == Mask::Pad10k   ? -10000.f
                       : c.mask == Mask::PadMin ? -FLT_MAX
                                                : -INFINITY;
    m.values.assign(c.B * c.Skv, 0.f);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = std::max<int64_t>(1, c.Skv - 3 * b); j < c.Skv; ++j)
        m.values[b * c.Skv + j] = fill;
    m.strides[0] = c.Skv;
    m.strides[3] = 1;
  } else if (c.mask == Mask::Causal || c.mask == Mask::CausalMin) {
    // [Sq,Skv], query i sees keys j <= i + Skv - Sq; the rest -inf, or finfo.min as GPT-2's
    // export fills them
    const float fill = c.mask == Mask::Causal ? -INFINITY : -FLT_MAX;
    m.values.assign(c.Sq * c.Skv, 0.f);
    for (int64_t i = 0; i < c.Sq; ++i)
      for (int64_t j = 0; j < c.Skv; ++j)
        if (j > i + c.Skv - c.Sq) m.values[i * c.Skv + j] = fill;
    m.strides[2] = c.Skv;
    m.strides[3] = 1;
  } else if (c.mask == Mask::LeftPadMin) {
    // [B,1,1,Skv] with finfo.min: batch 0 keeps only its last 20 keys (a row whose early key
    // blocks are all masked), every other batch masks every key (the plain average)
    m.values.assign(c.B * c.Skv, -FLT_MAX);
    for (int64_t j = std::max<int64_t>(0, c.Skv - 20); j < c.Skv; ++j)
      m.values[j] = 0.f;
    m.strides[0] = c.Skv;
    m.strides[3] = 1;
  } else if (c.mask == Mask::RowBias) { // [B,H,Sq,1]: one value per row, key stride 0
    m.values = randomVector(rng, c.B * c.H * c.Sq);
    m.strides[0] = c.H * c.Sq;
    m.strides[1] = c.Sq;
    m.strides[2] = 1;
  }
  return m;
}

std::vector<double> reference(const Case &c, const std::vector<float> &q,
                              const std::vector<float> &k, const std::vector<float> &v,
                              const MaskData &m, double scale) {
  std::vector<double> out(c.B * c.H * c.Sq * c.Dv, 0.0);
  std::vector<double> s(c.Skv);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Sq; ++i) {
        const int64_t bh = b * c.H + h;
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.Skv; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < c.D; ++d)
            dot += (double)q[(bh * c.Sq + i) * c.D + d] * k[(bh * c.Skv + j) * c.D + d];
          s[j] = dot * scale;
          if (!m.values.empty())
            s[j] +=
                m.values[b * m.strides[0] + h * m.strides[1] + i * m.strides[2] + j * m.strides[3]];
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue; // every key masked out: zeros (the shim's contract)
        double sum = 0;
        for (double &x : s)
          sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < c.Skv; ++j)
          for (int64_t d = 0; d < c.Dv; ++d)
            out[(bh * c.Sq + i) * c.Dv + d] += s[j] / sum * v[(bh * c.Skv + j) * c.Dv + d];
      }
  return out;
}

class SdpaIsa : public ::testing::TestWithParam<Case> {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override {
    kiln::rt::sdpa::forceIsa(Isa::Auto);
    omp_set_num_threads(omp_get_num_procs());
    kiln_rt_runner_destroy(ctx_);
  }
  kiln_shim_ctx *ctx_ = nullptr;
};

TEST_P(SdpaIsa, EveryKernelSetMatchesFloat64) {
  const Case c = GetParam();
  std::mt19937 rng(11);
  auto q = randomVector(rng, c.B * c.H * c.Sq * c.D);
  for (float &x : q)
    x *= c.sharp;
  auto k = randomVector(rng, c.B * c.H * c.Skv * c.D);
  auto v = randomVector(rng, c.B * c.H * c.Skv * c.Dv);
  MaskData m = makeMask(c, rng);
  const int64_t dims[6] = {c.B, c.H, c.Sq, c.Skv, c.D, c.Dv};
  const float scale = 1.0f / std::sqrt((float)c.D);
  const auto want = reference(c, q, k, v, m, scale);
  int ran = 0;
  for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Generic}) {
    if (!kiln::rt::sdpa::forceIsa(isa)) continue; // this CPU lacks it
    ++ran;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> out(want.size(), 123.f);
      int st = kiln_shim_sdpa_v2(ctx_, 0, q.data(), k.data(), v.data(),
                                 m.values.empty() ? nullptr : m.values.data(),
                                 m.values.empty() ? nullptr : m.strides, out.data(), dims, nullptr);
      ASSERT_EQ(st, KILN_OK) << kiln_rt_last_error();
      const std::string where = std::string(isaName(isa)) + ", threads " + std::to_string(threads);
      // float32 dot products of <= 128 terms and sums of <= 300 weights: ~1e-6 relative.
      EXPECT_LT(relL2(out.data(), want), 1e-5) << where;
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(out[i], want[i], 2e-5 + 2e-5 * std::fabs(want[i])) << where << " at " << i;
      }
      kiln_rt_runner_reset(ctx_);
    }
  }
  EXPECT_GE(ran, 1);
}

std::string caseName(const ::testing::TestParamInfo<Case> &info) {
  const Case &c = info.param;
  return "B" + std::to_string(c.B) + "H" + std::to_string(c.H) + "Sq" + std::to_string(c.Sq) +
         "Skv" + std::to_string(c.Skv) + "D" + std::to_string(c.D) + "Dv" + std::to_string(c.Dv) +
         "_" + maskName(c.mask) + (c.sharp > 1 ? "_sharp" : "");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SdpaIsa,
    ::testing::Values(Case{1, 2, 1, 1, 32, 32, Mask::None, 1}, // one query, one key
                      Case{2, 3, 13, 13, 32, 32, Mask::Pad10k, 1},
                      Case{1, 2, 127, 127, 64, 64, Mask::Causal, 1},
                      Case{2, 2, 129, 129, 64, 64, Mask::PadInf, 1},
                      Case{2, 2, 33, 65, 80, 80, Mask::PadMin, 1},
                      Case{1, 3, 17, 31, 128, 128, Mask::RowBias, 1},
                      Case{1, 1, 50, 300, 64, 64, Mask::None, 6},     // 2 key blocks, sharp
                      Case{1, 2, 45, 301, 80, 80, Mask::Causal, 6},   // causal over 2 blocks
                      Case{2, 1, 9, 513, 32, 32, Mask::PadInf, 6},    // 3 blocks
                      Case{1, 2, 70, 70, 64, 64, Mask::CausalMin, 1}, // GPT-2's fill
                      Case{1, 1, 40, 300, 64, 64, Mask::CausalMin, 6},
                      Case{3, 2, 13, 300, 64, 64, Mask::LeftPadMin, 6},
                      Case{1, 2, 11, 19, 24, 40, Mask::None, 1},   // Dv != D, odd widths
                      Case{1, 1, 7, 9, 5, 3, Mask::Pad10k, 1},     // tiny head dims
                      Case{3, 1, 1, 40, 64, 64, Mask::Causal, 1}), // decode step: Sq 1
    caseName);

// Every key of a query masked with -inf gives a zero row; with finfo.min, the unmasked
// average (PyTorch's behaviour for a finite fill), on every kernel set.
TEST_F(SdpaIsa, FullyMaskedRows) {
  const int64_t B = 1, H = 1, Sq = 3, Skv = 37, D = 64;
  std::mt19937 rng(5);
  auto q = randomVector(rng, Sq * D), k = randomVector(rng, Skv * D),
       v = randomVector(rng, Skv * D);
  const int64_t dims[6] = {B, H, Sq, Skv, D, D}, strides[4] = {0, 0, 0, 1};
  for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Generic}) {
    if (!kiln::rt::sdpa::forceIsa(isa)) continue;
    for (float fill : {-INFINITY, -FLT_MAX}) {
      std::vector<float> mask(Skv, fill), out(Sq * D, 123.f);
      ASSERT_EQ(kiln_shim_sdpa_v2(ctx_, 0, q.data(), k.data(), v.data(), mask.data(), strides,
                                  out.data(), dims, nullptr),
                KILN_OK)
          << kiln_rt_last_error();
      for (int64_t d = 0; d < D; ++d) {
        double mean = 0;
        for (int64_t j = 0; j < Skv; ++j)
          mean += v[j * D + d] / (double)Skv;
        const double want = fill == -INFINITY ? 0.0 : mean;
        for (int64_t i = 0; i < Sq; ++i)
          EXPECT_NEAR(out[i * D + d], want, 1e-5) << isaName(isa) << ", fill " << fill;
      }
      kiln_rt_runner_reset(ctx_);
    }
  }
}

// The softmax's exp over its whole range on every kernel set: query i's scores are 0 and x_i
// (keys [0] and [1], D = 1, scale 1) and V is [0] and [1], so its output is
// e^x / (1 + e^x), against float64 (the kernels' exp: relative 2.5e-7 where it matters, 1.8e-7
// absolute at most, plus the division). No output of the vector sets may be denormal (slow);
// far below the max they are exactly 0 (the generic set's libm expf may give denormals).
TEST_F(SdpaIsa, SoftmaxExpOverItsRange) {
  std::vector<float> q;
  for (int i = 0; i <= 2000; ++i)
    q.push_back(-0.05f * static_cast<float>(i)); // 0 down to -100
  for (float x = -88.5f; x < -86.5f; x += 0.004f)
    q.push_back(x); // where e^x passes the float minimum
  const int64_t Sq = static_cast<int64_t>(q.size());
  const int64_t dims[6] = {1, 1, Sq, 2, 1, 1};
  const float k[2] = {0.f, 1.f}, v[2] = {0.f, 1.f};
  const float one = 1.f;
  for (Isa isa : {Isa::Avx512, Isa::Avx2, Isa::Generic}) {
    if (!kiln::rt::sdpa::forceIsa(isa)) continue;
    std::vector<float> out(Sq, 123.f);
    ASSERT_EQ(kiln_shim_sdpa_v2(ctx_, 0, q.data(), k, v, nullptr, nullptr, out.data(), dims, &one),
              KILN_OK)
        << kiln_rt_last_error();
    for (int64_t i = 0; i < Sq; ++i) {
      const double e = std::exp(static_cast<double>(q[i])), want = e / (1 + e);
      EXPECT_NEAR(out[i], want, 3e-7 * want + 2.5e-38) << isaName(isa) << " x " << q[i];
      EXPECT_FALSE(isa != Isa::Generic && out[i] != 0.f && std::fabs(out[i]) < FLT_MIN)
          << isaName(isa) << " x " << q[i] << ": a denormal result";
    }
    kiln_rt_runner_reset(ctx_);
  }
}

} // namespace
