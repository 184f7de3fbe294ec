// kiln's GEMV (gemv.h) and the matmul shim's route to it, against float64: every ISA kernel
// this CPU runs, 1-4 rows, column counts around the 16-column panels, both B layouts, alpha,
// bias with beta, residual, ReLU/clip, threads splitting the panels; and the packed panels
// following constant updates.
#include "gemv.h"
#include "isa_cap.h"
#include "shim_matmul.h"
#include "test_util.h"
#include "weight_gemm_cases.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>

namespace {

using namespace kiln::test::weight_gemm;

std::vector<Gemm> cases() {
  std::vector<Gemm> v;
  std::mt19937 rng(3);
  const int64_t ns[] = {1, 15, 16, 17, 63, 100, 1000};
  const int64_t ks[] = {1, 7, 64, 1280};
  for (int64_t m = 1; m <= 4; ++m)
    for (int64_t n : ns)
      for (int64_t k : ks) {
        Gemm t{m,
               n,
               k,
               rng() % 2 == 0,
               rng() % 2 == 0,
               rng() % 2 == 0,
               static_cast<int32_t>(rng() % 3)}; // none, relu, gelu-free clip below
        if (t.post == 2) t.post = KILN_POST_CLIP;
        v.push_back(t);
      }
  return v;
}

class GemvIsa : public ::testing::TestWithParam<int> {
protected:
  void TearDown() override { kiln::rt::forceGemvKernel(nullptr); }
};

// Through the matmul shim with B constant (so the GEMV takes it), each kernel forced, at 1
// and 2 threads (1000 columns split into two shares of panels).
TEST_P(GemvIsa, MatchesFloat64Reference) {
  const int bits = GetParam();
  if (kiln::rt::usableIsaBits() < bits) GTEST_SKIP() << "this CPU cannot run the kernel";
  kiln::rt::forceGemvKernel(bits == 512   ? &kiln::rt::gemvAvx512Kernel()
                            : bits == 256 ? &kiln::rt::gemvAvx2Kernel()
                                          : &kiln::rt::gemvGenericKernel());
  const int saved = omp_get_max_threads();
  std::mt19937 rng(5);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Gemm &t : cases()) {
      kiln::rt::Runner r;
      const kiln_matmul_params_v1 p = params(t);
      Data d = makeData(t, p, rng);
      r.constantRanges.emplace_back(reinterpret_cast<const char *>(d.b.data()), d.b.size() * 4);
      ASSERT_TRUE(kiln::rt::gemvFits(p, true)) << t.describe();
      std::vector<float> c;
      ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK) << kiln_rt_last_error();
      expectClose(c, reference(t, p, d), t, p.ldc,
                  std::string(kiln::rt::activeGemvKernel().name) + " " + t.describe() +
                      " threads " + std::to_string(threads));
    }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemvIsa, ::testing::Values(512, 256, 0));

TEST(Gemv, TakesOnlyWhatItComputes) {
  Gemm t{1, 100, 64, true, true, false, KILN_POST_NONE};
  kiln_matmul_params_v1 p = params(t);
  EXPECT_TRUE(kiln::rt::gemvFits(p, true));
  EXPECT_FALSE(kiln::rt::gemvFits(p, false)); // B that is data: oneDNN
  kiln_matmul_params_v1 q = p;
  q.m = 5;
  EXPECT_FALSE(kiln::rt::gemvFits(q, true));
  q = p;
  q.post_op = KILN_POST_GELU_ERF;
  EXPECT_FALSE(kiln::rt::gemvFits(q, true));
  q = p;
  q.addend_kind = 2;
  EXPECT_FALSE(kiln::rt::gemvFits(q, true));
  q = p;
  q.trans_a = 1;
  EXPECT_FALSE(kiln::rt::gemvFits(q, true));
}

// The panels follow constant updates (weight_gemm_cases.h).
TEST(Gemv, PackedPanelsFollowConstantUpdates) {
  expectPanelsFollowConstantUpdates(Gemm{2, 40, 24, true, true, true, KILN_POST_RELU}, 9);
}

TEST(Gemv, NaNStaysNaNThroughTheClamp) {
  kiln::rt::Runner r;
  std::mt19937 rng(11);
  Gemm t{1, 20, 8, false, false, false, KILN_POST_CLIP};
  const kiln_matmul_params_v1 p = params(t);
  Data d = makeData(t, p, rng);
  d.a[3] = std::nanf("");
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(d.b.data()), d.b.size() * 4);
  std::vector<float> c;
  ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK);
  for (int64_t j = 0; j < t.n; ++j)
    EXPECT_TRUE(std::isnan(c[j])) << j;
}

} // namespace
