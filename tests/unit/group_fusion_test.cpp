// sched::formGroups: a kernel that reads a keepdims reduction's [.., 1] result through a loop
// variable of extent 1 (as LayerNorm lowers with dynamic dims) joins the reduction's group on
// the CPU (by default, or with KILN_GROUP_UNIT_VARS=1); with KILN_GROUP_UNIT_VARS=0 and for the
// CUDA target they stay apart.
#include "sched/schedule.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace kiln {
namespace {

/// sum[i0, i1, 0] = sum_r x[i0, i1, r] over [S0, S1, 4] and mean = sum / 4, both [S0, S1, 1],
/// the mean kernel indexing sum with its own extent-1 variable (i1 + i2 + S1*i0).
struct KeepdimsMean {
  sym::Context ctx;
  loop::Program p;
  KeepdimsMean() {
    sym::Expr s0 = ctx.symbol("batch", 1, 8), s1 = ctx.symbol("seq", 1, 64);
    sym::Expr one = ctx.constant(1), four = ctx.constant(4);
    auto *x = p.newBuffer(DType::Float32, {s0, s1, four}, loop::BufferKind::Input, "x");
    auto *sum = p.newBuffer(DType::Float32, {s0, s1, one}, loop::BufferKind::Intermediate, "s");
    auto *mean = p.newBuffer(DType::Float32, {s0, s1, one}, loop::BufferKind::Output, "m");
    p.inputs.push_back(x);
    p.outputs.push_back(mean);

    sym::Expr a0 = ctx.freshSymbol("i", 0, 7), a1 = ctx.freshSymbol("i", 0, 63);
    sym::Expr a2 = ctx.freshSymbol("i", 0, 0), r = ctx.freshSymbol("r", 0, 3);
    auto *red = p.newKernel(loop::KernelKind::Reduction);
    red->out = sum;
    red->vars = {a0, a1, a2};
    red->rvars = {r};
    red->rsizes = {four};
    red->rop = loop::ReduceOp::Sum;
    red->body = loop::load(x, (a0 * s1 + a1) * 4 + r);

    sym::Expr b0 = ctx.freshSymbol("i", 0, 7), b1 = ctx.freshSymbol("i", 0, 63);
    sym::Expr b2 = ctx.freshSymbol("i", 0, 0);
    auto *div = p.newKernel(loop::KernelKind::Pointwise);
    div->out = mean;
    div->vars = {b0, b1, b2};
    div->body = loop::binary(loop::BinaryOp::Div, loop::load(sum, b1 + b2 + s1 * b0),
                             loop::constant(DType::Float32, 4.0));
  }
};

/// formGroups on `m` for `target`, with KILN_GROUP_UNIT_VARS set to `env` (unset where null)
/// during the call; the groups stay in m.p (they point at its kernels).
void formWith(KeepdimsMean &m, const char *env,
              const sched::Target &target = sched::Target::cpu()) {
  if (env)
    ::setenv("KILN_GROUP_UNIT_VARS", env, 1);
  else
    ::unsetenv("KILN_GROUP_UNIT_VARS");
  sched::formGroups(m.p, m.ctx, target);
  ::unsetenv("KILN_GROUP_UNIT_VARS");
}

TEST(GroupFusion, ExtentOneVariableReadsTheOuterPoint) {
  KeepdimsMean m;
  formWith(m, "1");
  ASSERT_EQ(m.p.groups.size(), 1u);
  EXPECT_EQ(m.p.groups[0].kernels.size(), 2u);
  EXPECT_EQ(m.p.groups[0].outerRank, 2u);
}

TEST(GroupFusion, CpuDefaultJoinsTheReader) {
  KeepdimsMean m;
  formWith(m, nullptr);
  ASSERT_EQ(m.p.groups.size(), 1u);
  EXPECT_EQ(m.p.groups[0].kernels.size(), 2u);
}

TEST(GroupFusion, SwitchedOffKeepsSeparateKernels) {
  KeepdimsMean m;
  formWith(m, "0");
  EXPECT_EQ(m.p.groups.size(), 2u);
}

TEST(GroupFusion, CudaKeepsSeparateKernels) {
  const sched::Target cuda = sched::Target::cuda({"sm_90"});
  KeepdimsMean byDefault, switchedOn;
  formWith(byDefault, nullptr, cuda);
  formWith(switchedOn, "1", cuda);
  EXPECT_EQ(byDefault.p.groups.size(), 2u);
  EXPECT_EQ(switchedOn.p.groups.size(), 2u);
}

} // namespace
} // namespace kiln
