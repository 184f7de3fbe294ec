// Weight GEMMs for the tests of kiln's GEMV and AVX2 GEMM (gemv_test.cpp, gemm_test.cpp): a
// case's parameters as the matmul shim takes them (strides wider than the rows), random data,
// a float64 reference with every post-op, and the shim call with C's padding guarded.
#pragma once

#include "gemm.h"
#include "runner.h"
#include "shim_matmul.h"
#include "test_util.h"

#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace kiln::test::weight_gemm {

struct Gemm {
  int64_t m, n, k;
  bool transB, bias, residual;
  int32_t post;
  std::string describe() const {
    return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
           (transB ? " transB" : "") + (bias ? " bias" : "") + (residual ? " residual" : "") +
           " post " + std::to_string(post);
  }
};

inline kiln_matmul_params_v1 params(const Gemm &t) {
  kiln_matmul_params_v1 p{};
  p.batch = 1;
  p.m = t.m;
  p.n = t.n;
  p.k = t.k;
  p.lda = t.k + 3; // strides wider than the rows: the kernel must honour them
  p.ldb = t.transB ? t.k + 1 : t.n + 2;
  p.ldc = t.n + 5;
  p.trans_b = t.transB;
  p.post_op = t.post;
  p.clip_min = -0.25f;
  p.clip_max = 0.5f;
  p.alpha = 1.5f;
  p.beta = t.bias ? 0.75f : 1.f;
  p.addend_kind = t.bias ? 1 : 0;
  return p;
}

struct Data {
  std::vector<float> a, b, bias, residual;
};

inline Data makeData(const Gemm &t, const kiln_matmul_params_v1 &p, std::mt19937 &rng) {
  Data d;
  d.a = randomVector(rng, t.m * p.lda);
  d.b = randomVector(rng, (t.transB ? t.n : t.k) * p.ldb);
  d.bias = randomVector(rng, t.n);
  d.residual = randomVector(rng, t.m * p.ldc);
  return d;
}

inline std::vector<double> reference(const Gemm &t, const kiln_matmul_params_v1 &p, const Data &d) {
  std::vector<double> c(t.m * t.n);
  for (int64_t i = 0; i < t.m; ++i)
    for (int64_t j = 0; j < t.n; ++j) {
      double acc = 0;
      for (int64_t q = 0; q < t.k; ++q)
        acc += double(d.a[i * p.lda + q]) * (t.transB ? d.b[j * p.ldb + q] : d.b[q * p.ldb + j]);
      double v = p.alpha * acc;
      if (t.bias) v += double(p.beta) * d.bias[j];
      if (t.residual) v += d.residual[i * p.ldc + j];
      if (t.post == KILN_POST_RELU) v = std::max(v, 0.0);
      if (t.post == KILN_POST_CLIP)
        v = std::min(std::max(v, double(p.clip_min)), double(p.clip_max));
      if (t.post == KILN_POST_GELU_ERF) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
      if (t.post == KILN_POST_GELU_TANH)
        v = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
      c[i * t.n + j] = v;
    }
  return c;
}

// The GEMM kernels' parameters as the shim makes them (weightGemmParams, shim_gemm.cpp), for
// tests that call a kernel directly.
inline kiln::rt::GemmParams kernelParams(const Gemm &t, const kiln_matmul_params_v1 &p,
                                         const Data &d) {
  kiln::rt::GemmParams g;
  static_cast<kiln::rt::GemvParams &>(g) = kiln::rt::weightGemmParams(
      p, t.bias ? d.bias.data() : nullptr, t.residual ? d.residual.data() : nullptr);
  g.post = t.post == KILN_POST_GELU_ERF    ? kiln::rt::GemmPost::GeluErf
           : t.post == KILN_POST_GELU_TANH ? kiln::rt::GemmPost::GeluTanh
                                           : kiln::rt::GemmPost::Clamp;
  return g;
}

// An in-place residual: C (its padding -7) preset to the case's residual, or zeros where it
// has none, and the kernel's residual pointed at C.
inline void residualInC(const Gemm &t, const kiln_matmul_params_v1 &p, const Data &d,
                        std::vector<float> &c, kiln::rt::GemmParams &g) {
  c.assign(t.m * p.ldc, -7.f);
  for (int64_t i = 0; i < t.m; ++i)
    for (int64_t j = 0; j < t.n; ++j)
      c[i * p.ldc + j] = t.residual ? d.residual[i * p.ldc + j] : 0.f;
  g.residual = c.data();
}

// Sums of k products of values in [-1, 1], scaled by 1.5: float32 accumulation in another
// order than float64 stays below ~1e-4 absolute for k <= 1280; a wrong column, row or panel
// is off by O(1).
// `scale` widens it for Strassen's products (gemm_strassen_test.cpp says by how much).
inline void expectClose(const std::vector<float> &c, const std::vector<double> &want, const Gemm &t,
                        int64_t ldc, const std::string &what, double scale = 1.0) {
  const double tol = scale * (2e-6 * t.k + 1e-5);
  for (int64_t i = 0; i < t.m; ++i) {
    for (int64_t j = 0; j < t.n; ++j)
      ASSERT_NEAR(c[i * ldc + j], want[i * t.n + j], tol) << what << " at " << i << "," << j;
    for (int64_t j = t.n; j < ldc; ++j)
      ASSERT_EQ(c[i * ldc + j], -7.f) << what << ": padding written at " << i << "," << j;
  }
}

/// C through kiln::rt::matmulForward (site 1), its padding columns preset to -7.
inline int runShim(kiln::rt::Runner &r, const Gemm &t, const kiln_matmul_params_v1 &p,
                   const Data &d, std::vector<float> &c) {
  c.assign(t.m * p.ldc, -7.f);
  for (int64_t i = 0; i < t.m; ++i) // the padding between n and ldc must stay
    for (int64_t j = 0; j < t.n; ++j)
      c[i * p.ldc + j] = 0.f;
  return kiln::rt::matmulForward(r, 1, d.a.data(), d.b.data(), t.bias ? d.bias.data() : nullptr,
                                 t.residual ? d.residual.data() : nullptr, c.data(), p, 7);
}

/// The packed panels are made once per constant set: an in-place edit of B under the same
/// token is not seen (proof the packed copy is used); a new token re-packs. `t` must be a
/// GEMM the route under test takes.
inline void expectPanelsFollowConstantUpdates(const Gemm &t, uint32_t seed, double scale = 1.0) {
  kiln::rt::Runner r;
  std::mt19937 rng(seed);
  const kiln_matmul_params_v1 p = params(t);
  Data d = makeData(t, p, rng);
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(d.b.data()), d.b.size() * 4);
  std::vector<float> c;
  ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK);
  expectClose(c, reference(t, p, d), t, p.ldc, "first run", scale);
  const Data before = d;
  for (float &v : d.b)
    v = -v;
  ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK);
  expectClose(c, reference(t, p, before), t, p.ldc, "same token: the packed panels", scale);
  r.useConstants(nullptr, 0, r.weightsToken + 1);
  ASSERT_EQ(runShim(r, t, p, d, c), KILN_OK);
  expectClose(c, reference(t, p, d), t, p.ldc, "new token", scale);
}

/// Q/K/V as one GEMM over [B_0 | B_1 | B_2] through kiln_shim_matmul_multi_v1, with the biases
/// hasBias names, against float64 within `scale` times expectClose's bound; `fits` asserts
/// that the route under test takes it, before the call.
struct MultiCase {
  int64_t m, k, lda;
  int64_t n[3];
  bool hasBias[3];
};
inline void expectMultiShimMatches(const MultiCase &mc, uint32_t seed, double scale,
                                   bool (*fits)(kiln::rt::Runner &, const float *const *,
                                                const kiln_matmul_multi_params_v1 &)) {
  std::mt19937 rng(seed);
  kiln_matmul_multi_params_v1 p{};
  p.m = mc.m;
  p.k = mc.k;
  p.lda = mc.lda;
  p.count = 3;
  int64_t total = 0;
  for (int g = 0; g < 3; ++g)
    total += p.n[g] = mc.n[g];
  p.ldc = total + 3;
  std::vector<float> a = kiln::test::randomVector(rng, p.m * p.lda);
  std::vector<float> weights = kiln::test::randomVector(rng, p.k * total);
  std::vector<float> biases[3];
  const float *b[3], *bias[3];
  for (int g = 0, col = 0; g < 3; col += mc.n[g], ++g) {
    b[g] = weights.data() + p.k * col;
    if (mc.hasBias[g]) biases[g] = kiln::test::randomVector(rng, mc.n[g]);
    bias[g] = mc.hasBias[g] ? biases[g].data() : nullptr;
  }
  kiln::rt::Runner r;
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(weights.data()), weights.size() * 4);
  ASSERT_TRUE(fits(r, b, p));
  std::vector<float> c(p.m * p.ldc, -7.f);
  ASSERT_EQ(kiln_shim_matmul_multi_v1(&r, 3, a.data(), b, bias, c.data(), &p), KILN_OK)
      << kiln_rt_last_error();
  int64_t col = 0;
  for (int g = 0; g < 3; ++g) {
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < mc.n[g]; ++j) {
        double want = bias[g] ? bias[g][j] : 0.0;
        for (int64_t q = 0; q < p.k; ++q)
          want += double(a[i * p.lda + q]) * b[g][q * mc.n[g] + j];
        ASSERT_NEAR(c[i * p.ldc + col + j], want, scale * (2e-6 * p.k + 1e-5))
            << g << ": " << i << "," << j;
      }
    col += mc.n[g];
  }
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = total; j < p.ldc; ++j)
      ASSERT_EQ(c[i * p.ldc + j], -7.f) << "padding written at " << i << "," << j;
}

} // namespace kiln::test::weight_gemm
