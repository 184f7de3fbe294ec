// CUDA launch tuning (sched/tuning.cpp): a file's entry changes only the group it names and
// only to one of that group's own candidates; autotune's forced variants walk the candidates;
// tuning files round-trip and malformed ones are refused with the file named.
#include "sched/schedule.h"
#include "sched/tuning.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace kiln {
namespace {

/// y = relu(x) over [64, 256]: one elementwise group (vector 4, block 256 by heuristics).
struct OneKernel {
  sym::Context ctx;
  loop::Program p;
  OneKernel() {
    ir::Shape s{ctx.constant(64), ctx.constant(256)};
    auto *x = p.newBuffer(DType::Float32, s, loop::BufferKind::Input, "x");
    auto *y = p.newBuffer(DType::Float32, s, loop::BufferKind::Output, "y");
    p.inputs.push_back(x);
    p.outputs.push_back(y);
    sym::Expr i = ctx.freshSymbol("i", 0, 63), j = ctx.freshSymbol("j", 0, 255);
    auto *k = p.newKernel(loop::KernelKind::Pointwise);
    k->out = y;
    k->vars = {i, j};
    k->body = loop::binary(loop::BinaryOp::Max, loop::load(x, i * ctx.constant(256) + j),
                           loop::constant(DType::Float32, 0.0));
  }
  loop::CudaSchedule schedule(const sched::Target &t) {
    sched::scheduleProgram(p, ctx, t);
    EXPECT_EQ(p.groups.size(), 1u);
    return p.groups.front().cuda;
  }
};

sched::Target cuda() {
  return sched::Target::cuda({"sm_90"});
}

TEST(Tuning, HeuristicsWithoutAFileAndAStableKey) {
  loop::CudaSchedule a = OneKernel().schedule(cuda()), b = OneKernel().schedule(cuda());
  EXPECT_EQ(a.block, 256);
  EXPECT_EQ(a.vector, 4);
  EXPECT_EQ(a.tuneKey.size(), 16u);
  EXPECT_EQ(a.tuneKey, b.tuneKey); // the same model gives the same key
}

TEST(Tuning, FileEntryAppliesToItsKernelOnly) {
  std::string key = OneKernel().schedule(cuda()).tuneKey;
  auto table = std::make_shared<sched::TuningTable>();
  table->kernels[key] = {{256, 1, 2}, {0.01}};
  table->kernels["0000000000000000"] = {{512, 4, 2}, {0.01}}; // another model's kernel
  sched::Target t = cuda();
  t.tuning = table;
  loop::CudaSchedule s = OneKernel().schedule(t);
  EXPECT_EQ(s.block, 256);
  EXPECT_EQ(s.vector, 1);
  EXPECT_TRUE(s.vectorLoads.empty()); // scalar lanes read no 16-byte vectors
  table->kernels[key] = {{128, 4, 2}, {0.01}};
  s = OneKernel().schedule(t);
  EXPECT_EQ(s.block, 128);
  EXPECT_EQ(s.vector, 4);
  EXPECT_FALSE(s.vectorLoads.empty());
}

TEST(Tuning, EntryThatIsNotACandidateIsIgnored) {
  std::string key = OneKernel().schedule(cuda()).tuneKey;
  auto table = std::make_shared<sched::TuningTable>();
  table->kernels[key] = {{96, 4, 2}, {}}; // 96 threads is no candidate
  sched::Target t = cuda();
  t.tuning = table;
  EXPECT_EQ(OneKernel().schedule(t).block, 256);
}

TEST(Tuning, ForcedVariantsWalkTheCandidates) {
  OneKernel base;
  base.schedule(cuda());
  std::vector<sched::TuningConfig> cands = sched::tuningCandidates(base.p.groups.front());
  ASSERT_EQ(cands.size(), 4u); // heuristic (256, vec 4), 128, 512, and 256 scalar
  EXPECT_EQ(cands[0], (sched::TuningConfig{256, 4, 2}));
  for (int v = 0; v < 6; ++v) {
    sched::Target t = cuda();
    t.tuneVariant = v;
    loop::CudaSchedule s = OneKernel().schedule(t);
    const sched::TuningConfig &c = cands[static_cast<size_t>(v) % cands.size()];
    EXPECT_EQ(s.block, c.block) << "variant " << v;
    EXPECT_EQ(s.vector, c.vector) << "variant " << v;
  }
}

TEST(Tuning, FileRoundTripAndMalformedFiles) {
  std::string path = ::testing::TempDir() + "kiln_tuning_test.json";
  sched::TuningTable t;
  t.arch = "sm_90";
  t.buckets = {"b=1", "b=8"};
  t.kernels["00000000000000ab"] = {{512, 1, 4}, {0.5, 1.25}};
  sched::writeTuningFile(t, path);
  sched::TuningTable r = sched::readTuningFile(path);
  EXPECT_EQ(r.arch, "sm_90");
  EXPECT_EQ(r.buckets, t.buckets);
  ASSERT_EQ(r.kernels.count("00000000000000ab"), 1u);
  EXPECT_EQ(r.kernels["00000000000000ab"].config, (sched::TuningConfig{512, 1, 4}));
  EXPECT_EQ(r.kernels["00000000000000ab"].ms, (std::vector<double>{0.5, 1.25}));
  auto refused = [&](const std::string &text, const std::string &why) {
    std::ofstream(path) << text;
    try {
      sched::readTuningFile(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const UserError &e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused("{not json", "not valid JSON");
  refused(R"({"format": "other", "kernels": {}})", "not a kiln tuning file");
  refused(R"({"format": "kiln-tuning-1", "kernels": {"k": {"block": 128}}})", "malformed");
  std::remove(path.c_str());
  try {
    sched::readTuningFile(path);
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("cannot be read"), std::string::npos);
  }
}

} // namespace
} // namespace kiln
