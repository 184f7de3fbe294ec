// The deterministic reduction split (sched/split_reductions.cpp): shapes of the two kernels,
// and the loop-IR interpreter's result of the split program against float64 sums and exact
// maxima computed here from the same data.
#include "loop/interp.h"
#include "sched/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace kiln {
namespace {

struct Fixture {
  sym::Context ctx;
  loop::Program p;
  loop::Buffer *in = nullptr;
  std::vector<float> values;

  /// A constant [rows, a, b] of pseudo-random floats in [-1, 1).
  Fixture(int64_t rows, int64_t a, int64_t b) {
    in = p.newBuffer(DType::Float32, {ctx.constant(rows), ctx.constant(a), ctx.constant(b)},
                     loop::BufferKind::Constant, "x");
    uint32_t state = 12345;
    values.resize(static_cast<size_t>(rows * a * b));
    for (float &v : values) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(state >> 8) / static_cast<float>(1 << 23) - 1.0f;
    }
    auto t = std::make_shared<ir::TensorData>();
    t->dtype = DType::Float32;
    t->dims = {rows, a, b};
    t->bytes.resize(values.size() * sizeof(float));
    std::memcpy(t->bytes.data(), values.data(), t->bytes.size());
    in->data = t;
    p.constants.push_back(in);
  }

  /// out[i] = reduce over (j, k) of x[i, j, k] (two reduction vars, so the split has to
  /// rebuild both from the flat chunk index).
  loop::Buffer *reduce(loop::ReduceOp op) {
    const ir::Shape &s = in->shape;
    auto *out = p.newBuffer(DType::Float32, {s[0]}, loop::BufferKind::Output, "y");
    p.outputs.push_back(out);
    sym::Expr i = ctx.freshSymbol("i", 0, s[0]->value - 1);
    sym::Expr j = ctx.freshSymbol("j", 0, s[1]->value - 1);
    sym::Expr k = ctx.freshSymbol("k", 0, s[2]->value - 1);
    auto *kern = p.newKernel(loop::KernelKind::Reduction);
    kern->out = out;
    kern->vars = {i};
    kern->rvars = {j, k};
    kern->rsizes = {s[1], s[2]};
    kern->rop = op;
    kern->body = loop::load(in, (i * s[1] + j) * s[2] + k);
    return out;
  }
};

TEST(SplitReductions, FewLongSumsBecomePartialsAndAnOrderedFold) {
  Fixture f(2, 96, 512); // 2 outputs of 49152 elements
  loop::Buffer *y = f.reduce(loop::ReduceOp::Sum);
  sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cuda({"sm_90"}));
  ASSERT_EQ(f.p.kernels.size(), 2u) << loop::dump(f.p);
  const loop::Kernel &partials = *f.p.kernels[0];
  const loop::Kernel &fold = *f.p.kernels[1];
  ASSERT_EQ(partials.out->shape.size(), 2u);
  int64_t chunks = partials.out->shape[1]->value;
  EXPECT_GE(chunks, 2);
  EXPECT_EQ(49152 % chunks, 0);
  EXPECT_EQ(partials.rsizes[0]->value * chunks, 49152);
  EXPECT_EQ(fold.out, y);
  EXPECT_EQ(fold.rsizes[0]->value, chunks);
  EXPECT_EQ(fold.body->buf, partials.out);

  loop::Interpreter interp(f.p, f.ctx);
  const ir::TensorData &got = interp.bufferData(y);
  for (int r = 0; r < 2; ++r) {
    double want = 0;
    for (int e = 0; e < 49152; ++e)
      want += f.values[r * 49152 + e];
    // float accumulation over 49152 terms of magnitude <= 1: |error| <= n * eps * sum|x|
    // in the worst case; the sums here are O(100), so 1e-2 absolute is a loose bound.
    EXPECT_NEAR(got.as<float>()[r], want, 1e-2) << "row " << r;
  }
}

TEST(SplitReductions, MaxSplitsAndStaysExact) {
  Fixture f(1, 64, 1024);
  loop::Buffer *y = f.reduce(loop::ReduceOp::Max);
  sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cuda({"sm_90"}));
  ASSERT_EQ(f.p.kernels.size(), 2u);
  loop::Interpreter interp(f.p, f.ctx);
  float want = -INFINITY;
  for (float v : f.values)
    want = std::max(want, v);
  EXPECT_EQ(interp.bufferData(y).as<float>()[0], want);
}

TEST(SplitReductions, CpuManyOutputsAndShortExtentsStayWhole) {
  {
    Fixture f(1, 64, 1024);
    f.reduce(loop::ReduceOp::Sum);
    sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cpu());
    EXPECT_EQ(f.p.kernels.size(), 1u) << "the CPU target never splits";
  }
  {
    Fixture f(512, 4, 256); // 512 outputs: enough blocks already
    f.reduce(loop::ReduceOp::Sum);
    sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cuda({"sm_90"}));
    EXPECT_EQ(f.p.kernels.size(), 1u);
  }
  {
    Fixture f(4, 2, 512); // 1024 elements per output: shorter than one chunk
    f.reduce(loop::ReduceOp::Sum);
    sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cuda({"sm_90"}));
    EXPECT_EQ(f.p.kernels.size(), 1u);
  }
  {
    Fixture f(1, 64, 1024); // arg reductions keep their index: not split
    f.reduce(loop::ReduceOp::ArgMax);
    sched::splitFewOutputReductions(f.p, f.ctx, sched::Target::cuda({"sm_90"}));
    EXPECT_EQ(f.p.kernels.size(), 1u);
  }
}

} // namespace
} // namespace kiln
