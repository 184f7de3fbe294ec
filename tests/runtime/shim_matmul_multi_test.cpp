// kiln_shim_matmul_multi_v1 (level 8): A x [B_0 | B_1 | ...] + biases as one GEMM, against a
// float64 reference; the packed concatenated B kept across calls while the constant set
// stays and rebuilt after a constant update or a swap to other pointers; argument errors.
#include "runner.h"
#include "test_util.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using kiln::test::randomVector;

struct MultiCase {
  int64_t m, k;
  std::vector<int64_t> n;
  std::vector<bool> bias; // per B; empty: no bias array at all
  int64_t padA, padC;
  std::string describe() const {
    std::string s = "m" + std::to_string(m) + " k" + std::to_string(k) + " n";
    for (int64_t x : n)
      s += " " + std::to_string(x);
    return s + " padA " + std::to_string(padA) + " padC " + std::to_string(padC);
  }
};

struct Operands {
  std::vector<float> a, c;
  std::vector<std::vector<float>> b, bias;
  std::vector<const float *> bPtr, biasPtr;
  kiln_matmul_multi_params_v1 p{};
};

Operands makeOperands(const MultiCase &t, std::mt19937 &rng) {
  Operands o;
  o.p.m = t.m;
  o.p.k = t.k;
  o.p.lda = t.k + t.padA;
  o.p.count = static_cast<int32_t>(t.n.size());
  int64_t total = 0;
  for (size_t g = 0; g < t.n.size(); ++g) {
    o.p.n[g] = t.n[g];
    total += t.n[g];
    o.b.push_back(randomVector(rng, t.k * t.n[g]));
    o.bias.push_back(randomVector(rng, t.n[g]));
  }
  o.p.ldc = total + t.padC;
  o.a = randomVector(rng, t.m * o.p.lda);
  o.c.assign(t.m * o.p.ldc, 7.f); // padding must keep its 7s
  for (size_t g = 0; g < t.n.size(); ++g) {
    o.bPtr.push_back(o.b[g].data());
    o.biasPtr.push_back(!t.bias.empty() && t.bias[g] ? o.bias[g].data() : nullptr);
  }
  return o;
}

// Checks C against float64 sums. float32 accumulation of k terms is within (k + 1) u
// sum|terms| of the exact value (u = 2^-24), whatever order oneDNN adds them in; an element
// from the wrong B, column or bias is off by about sum|terms| / sqrt(k), far more.
void expectMatches(const Operands &o, const std::vector<std::vector<float>> &b,
                   const std::string &what) {
  const auto &p = o.p;
  int64_t col = 0;
  for (int32_t g = 0; g < p.count; ++g) {
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n[g]; ++j) {
        double want = o.biasPtr[g] ? o.biasPtr[g][j] : 0.0, mag = std::fabs(want);
        for (int64_t q = 0; q < p.k; ++q) {
          double term = double(o.a[i * p.lda + q]) * b[g][q * p.n[g] + j];
          want += term;
          mag += std::fabs(term);
        }
        double got = o.c[i * p.ldc + col + j];
        ASSERT_LE(std::fabs(got - want), (p.k + 1) * 0x1p-24 * mag + 1e-30)
            << what << ": block " << g << " [" << i << ", " << j << "]";
      }
    col += p.n[g];
  }
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = col; j < p.ldc; ++j)
      ASSERT_EQ(o.c[i * p.ldc + j], 7.f) << what << ": padding at [" << i << ", " << j << "]";
}

int call(kiln::rt::Runner &r, Operands &o, int64_t site = 3) {
  const bool anyBias = std::any_of(o.biasPtr.begin(), o.biasPtr.end(), [](auto *b) { return b; });
  return kiln_shim_matmul_multi_v1(&r, site, o.a.data(), o.bPtr.data(),
                                   anyBias ? o.biasPtr.data() : nullptr, o.c.data(), &o.p);
}

class MatmulMulti : public ::testing::TestWithParam<MultiCase> {};

TEST_P(MatmulMulti, MatchesFloat64) {
  const MultiCase t = GetParam();
  std::mt19937 rng(static_cast<unsigned>(t.m * 131 + t.k));
  Operands o = makeOperands(t, rng);
  kiln::rt::Runner r;
  for (auto &b : o.b) // weights: packed once and cached
    r.constantRanges.emplace_back(reinterpret_cast<const char *>(b.data()), b.size() * 4);
  ASSERT_EQ(call(r, o), KILN_OK) << kiln_rt_last_error();
  expectMatches(o, o.b, t.describe());
  ASSERT_EQ(call(r, o), KILN_OK) << kiln_rt_last_error(); // from the cache
  expectMatches(o, o.b, t.describe() + " (cached)");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatmulMulti,
    ::testing::Values(
        // BERT-base's Q/K/V projection at a short sequence.
        MultiCase{16, 768, {768, 768, 768}, {true, true, true}, 0, 0},
        MultiCase{37, 64, {64, 48, 80}, {true, false, true}, 0, 0}, // mixed widths and biases
        MultiCase{5, 33, {7, 9}, {}, 3, 5},                         // no bias; padded A and C
        MultiCase{1, 40, {24}, {true}, 0, 2},                       // one B, one row
        MultiCase{9, 16, {8, 0, 8}, {true, true, true}, 0, 0},      // an empty block
        MultiCase{4, 0, {6, 5}, {true, false}, 0, 1},               // k = 0: bias only
        MultiCase{3,
                  12,
                  {4, 4, 4, 4, 4, 4, 4, 4},
                  {true, false, true, false, true, false, true, false},
                  1,
                  0}), // the most B's
    [](const auto &info) { return "case" + std::to_string(info.index); });

// The packed [B_0 | B_1 | B_2] is reused while the constant set stays (an in-place edit with
// no new token is not seen: proof the cache is used), rebuilt after a constant update (new
// token) or for other pointers, and never cached for B's that are data.
TEST(MatmulMultiCache, FollowsConstantUpdates) {
  std::mt19937 rng(5);
  MultiCase t{8, 32, {16, 16, 8}, {true, true, true}, 0, 0};
  Operands o = makeOperands(t, rng);
  kiln::rt::Runner r;
  std::vector<float> other = randomVector(rng, 32 * 16);
  for (auto &b : o.b)
    r.constantRanges.emplace_back(reinterpret_cast<const char *>(b.data()), b.size() * 4);
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(other.data()), other.size() * 4);
  ASSERT_EQ(call(r, o), KILN_OK) << kiln_rt_last_error();
  expectMatches(o, o.b, "first run");
  const size_t cachedWeights = r.dnnl.numWeights();
  EXPECT_EQ(cachedWeights, 1u) << "one packed concatenation";

  const auto before = o.b;
  for (float &v : o.b[1])
    v = -v;
  ASSERT_EQ(call(r, o), KILN_OK);
  expectMatches(o, before, "same token: the cached packing");

  r.useConstants(nullptr, 0, r.weightsToken + 1); // the run after a constant update
  ASSERT_EQ(call(r, o), KILN_OK);
  expectMatches(o, o.b, "new token: re-packed from the updated key weight");

  auto swapped = o.b;
  swapped[1] = other;
  o.bPtr[1] = other.data(); // the other constant set's key weight
  ASSERT_EQ(call(r, o), KILN_OK);
  expectMatches(o, swapped, "other pointers");

  std::vector<float> data = o.b[2]; // not a constant: concatenated on every call
  o.bPtr[2] = data.data();
  swapped[2] = data;
  ASSERT_EQ(call(r, o), KILN_OK);
  for (float &v : data)
    v *= 0.5f;
  swapped[2] = data;
  ASSERT_EQ(call(r, o), KILN_OK);
  expectMatches(o, swapped, "a B that is data");
}

TEST(MatmulMultiErrors, RefusesBadArguments) {
  std::mt19937 rng(6);
  Operands o = makeOperands({4, 8, {4, 4}, {}, 0, 0}, rng);
  kiln::rt::Runner r;
  auto expectRefused = [&](kiln_matmul_multi_params_v1 p, const char *needle) {
    std::swap(p, o.p);
    EXPECT_EQ(call(r, o), KILN_ERR_INVALID_ARGUMENT) << needle;
    EXPECT_NE(std::string(kiln_rt_last_error()).find(needle), std::string::npos)
        << kiln_rt_last_error();
    std::swap(p, o.p);
  };
  kiln_matmul_multi_params_v1 p = o.p;
  p.count = 0;
  expectRefused(p, "count 0");
  p.count = KILN_MATMUL_MULTI_MAX + 1;
  expectRefused(p, "count 9");
  p = o.p;
  p.ldc = 7;
  expectRefused(p, "ldc 7 < total n 8");
  p = o.p;
  p.n[1] = -1;
  expectRefused(p, "n[1] is negative");
  o.bPtr[1] = nullptr;
  EXPECT_EQ(call(r, o), KILN_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_rt_last_error()).find("b[1] is NULL"), std::string::npos);
  EXPECT_EQ(
      kiln_shim_matmul_multi_v1(&r, 1, o.a.data(), o.bPtr.data(), nullptr, o.c.data(), nullptr),
      KILN_ERR_INVALID_ARGUMENT);
}

} // namespace
