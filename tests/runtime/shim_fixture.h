// What the matmul shim tests share: a fixture with one runner context per test, the float64
// product of one output element and the check that row padding stays untouched.
#pragma once

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace kiln::test {

template <class Case> class ShimTest : public ::testing::TestWithParam<Case> {
protected:
  void SetUp() override { ASSERT_EQ(kiln_rt_runner_create(&ctx_), KILN_OK); }
  void TearDown() override { kiln_rt_runner_destroy(ctx_); }
  kiln_shim_ctx *ctx_ = nullptr;
};

/// (A B)[i, j] of matrix bi in float64, honouring p's transposes, leading dims and batch
/// strides.
inline double matmulElement(const float *a, const float *b, const kiln_matmul_params_v1 &p,
                            int64_t bi, int64_t i, int64_t j) {
  const float *ab = a + bi * p.a_batch_stride;
  const float *bb = b + bi * p.b_batch_stride;
  double acc = 0;
  for (int64_t q = 0; q < p.k; ++q) {
    double av = p.trans_a ? ab[q * p.lda + i] : ab[i * p.lda + q];
    double bv = p.trans_b ? bb[j * p.ldb + q] : bb[q * p.ldb + j];
    acc += av * bv;
  }
  return acc;
}

/// The elements between n and ldc of every row of C must keep their values.
inline void expectPaddingKept(const std::vector<float> &c, const std::vector<double> &want,
                              const kiln_matmul_params_v1 &p) {
  for (int64_t bi = 0; bi < p.batch; ++bi)
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = p.n; j < p.ldc; ++j) {
        int64_t ci = bi * p.c_batch_stride + i * p.ldc + j;
        EXPECT_EQ(c[ci], float(want[ci])) << "padding at " << ci;
      }
}

} // namespace kiln::test
