// CUDA launch tuning (sched/tuning*.cpp): a file's entry changes only the group it names and
// only to one of that group's own candidates; autotune's forced variants walk the candidates;
// per-bucket bests beyond the noise margin become run-time variants with thresholds on the
// group's work; tuning files round-trip, old-format ones still read, and malformed or
// mismatched ones are refused with the file named.
#include "sched/schedule.h"
#include "sched/tuning.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <fstream>

namespace kiln {
namespace {

/// y = relu(x) over [64, 256] (or [batch, 256], batch in 1..64): one elementwise group
/// (vector 4, block 256 by heuristics).
struct OneKernel {
  sym::Context ctx;
  loop::Program p;
  explicit OneKernel(bool dynamic = false) {
    ir::Shape s{dynamic ? ctx.symbol("batch", 1, 64) : ctx.constant(64), ctx.constant(256)};
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

/// A "kiln-tuning-1" style entry: one configuration for all sizes.
sched::TunedKernel single(sched::TuningConfig c) {
  return {{{c, {0.01}}}, {}};
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
  table->kernels[key] = single({256, 1, 2});
  table->kernels["0000000000000000"] = single({512, 4, 2}); // another model's kernel
  sched::Target t = cuda();
  t.tuning = table;
  loop::CudaSchedule s = OneKernel().schedule(t);
  EXPECT_EQ(s.block, 256);
  EXPECT_EQ(s.vector, 1);
  EXPECT_TRUE(s.vectorLoads.empty()); // scalar lanes read no 16-byte vectors
  table->kernels[key] = single({128, 4, 2});
  s = OneKernel().schedule(t);
  EXPECT_EQ(s.block, 128);
  EXPECT_EQ(s.vector, 4);
  EXPECT_FALSE(s.vectorLoads.empty());
}

TEST(Tuning, EntryThatIsNotACandidateIsIgnored) {
  std::string key = OneKernel().schedule(cuda()).tuneKey;
  auto table = std::make_shared<sched::TuningTable>();
  table->kernels[key] = single({96, 4, 2}); // 96 threads is no candidate
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

/// Buckets batch = 1, 8, 64 (work 256, 2048, 16384) and the elementwise kernel's four
/// candidates, each timed per bucket; `best` is derived from the times.
std::shared_ptr<sched::TuningTable> perBucket(const std::string &key,
                                              std::vector<std::vector<double>> ms) {
  auto t = std::make_shared<sched::TuningTable>();
  t->path = "per-bucket.json";
  t->buckets = {{{"batch", 1}}, {{"batch", 8}}, {{"batch", 64}}};
  std::vector<sched::TuningConfig> configs = {{256, 4, 2}, {128, 4, 2}, {512, 4, 2}, {256, 1, 2}};
  sched::TunedKernel k;
  for (size_t c = 0; c < configs.size(); ++c)
    k.configs.push_back({configs[c], ms[c]});
  for (size_t b = 0; b < 3; ++b) {
    int best = 0;
    for (size_t c = 1; c < configs.size(); ++c)
      if (ms[c][b] < ms[best][b]) best = static_cast<int>(c);
    k.best.push_back(best);
  }
  t->kernels[key] = k;
  return t;
}

loop::KernelGroup scheduledWith(std::shared_ptr<sched::TuningTable> table, OneKernel &m) {
  sched::Target t = cuda();
  t.tuning = table;
  m.schedule(t);
  return m.p.groups.front();
}

constexpr int64_t kMin = INT64_MIN, kMax = INT64_MAX;
using Ranges = std::vector<std::pair<int64_t, int64_t>>;

TEST(TuningSelection, EachBucketsBestBecomesAVariantWithThresholdsAtGeometricMidpoints) {
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  // Kept for all sizes: 256/vec4 (smallest relative sum). batch=1: 256 scalar is 20% faster;
  // batch=64: 512/vec4 is 25% faster. Both beat the 10% margin.
  auto table =
      perBucket(key, {{1.2, 2.0, 10.0}, {1.3, 2.4, 11.0}, {1.3, 2.4, 8.0}, {1.0, 2.6, 14.0}});
  OneKernel m(true);
  loop::KernelGroup g = scheduledWith(table, m);
  ASSERT_EQ(g.cudaVariants.size(), 3u);
  const auto &v = g.cudaVariants;
  EXPECT_EQ(sym::toString(g.cudaMeasure), "256*batch");
  // Work 256, 2048, 16384: thresholds round(sqrt(256*2048)) = 724, round(sqrt(2048*16384)) = 5793.
  EXPECT_EQ(v[0].ranges, (Ranges{{kMin, 724}}));
  EXPECT_EQ(v[1].ranges, (Ranges{{724, 5793}}));
  EXPECT_EQ(v[2].ranges, (Ranges{{5793, kMax}}));
  EXPECT_EQ(v[0].schedule.block, 256);
  EXPECT_EQ(v[0].schedule.vector, 1);
  EXPECT_TRUE(v[0].schedule.vectorLoads.empty());
  EXPECT_EQ(v[1].schedule.block, 256);
  EXPECT_EQ(v[1].schedule.vector, 4);
  EXPECT_FALSE(v[1].schedule.vectorLoads.empty());
  EXPECT_EQ(v[2].schedule.block, 512);
  EXPECT_EQ(v[2].schedule.vector, 4);
  // The scalar variant is its own function; 256/vec4 and 512/vec4 differ in block only and
  // share one, bounded by the larger block.
  EXPECT_EQ(v[0].schedule.function, 0);
  EXPECT_EQ(v[1].schedule.function, 1);
  EXPECT_EQ(v[2].schedule.function, 1);
  EXPECT_EQ(v[0].schedule.launchBound, 256);
  EXPECT_EQ(v[1].schedule.launchBound, 512);
  EXPECT_EQ(v[2].schedule.launchBound, 512);
  EXPECT_EQ(g.cuda.vector, 1); // the group's schedule is the first variant's
  EXPECT_EQ(sched::describeSelection(g),
            "by 256*batch: < 724: block 256 vector 1; [724, 5793): block 256 vector 4 (_v1); "
            ">= 5793: block 512 vector 4 (_v1)");
}

TEST(TuningSelection, AConfigurationChosenAtBothEndsIsOneVariantWithTwoRanges) {
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  // 256/vec4 wins at batch 1 and 64; 128/vec4 is 30% faster at batch 8.
  auto table =
      perBucket(key, {{1.0, 2.6, 10.0}, {1.5, 2.0, 15.0}, {1.2, 3.0, 12.0}, {1.4, 3.0, 13.0}});
  OneKernel m(true);
  loop::KernelGroup g = scheduledWith(table, m);
  ASSERT_EQ(g.cudaVariants.size(), 2u);
  EXPECT_EQ(g.cudaVariants[0].schedule.block, 256);
  EXPECT_EQ(g.cudaVariants[0].ranges, (Ranges{{kMin, 724}, {5793, kMax}}));
  EXPECT_EQ(g.cudaVariants[1].schedule.block, 128);
  EXPECT_EQ(g.cudaVariants[1].ranges, (Ranges{{724, 5793}}));
  EXPECT_EQ(g.cudaVariants[1].schedule.function, 0); // block only: the same function
  EXPECT_EQ(g.cudaVariants[0].schedule.launchBound, 256);
}

TEST(TuningSelection, GainsWithinTheNoiseMarginKeepOneConfiguration) {
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  // Other buckets' bests are only 5% and 9% faster than 256/vec4 there.
  auto table =
      perBucket(key, {{1.05, 2.0, 10.9}, {1.3, 2.4, 11.0}, {1.3, 2.2, 10.0}, {1.0, 2.6, 14.0}});
  OneKernel m(true);
  loop::KernelGroup g = scheduledWith(table, m);
  EXPECT_TRUE(g.cudaVariants.empty());
  EXPECT_EQ(g.cuda.block, 256);
  EXPECT_EQ(g.cuda.vector, 4);
  EXPECT_EQ(sched::describeSelection(g), "");
}

TEST(TuningSelection, AKernelWhoseWorkDoesNotChangeWithTheBucketsKeepsOneConfiguration) {
  // The static [64, 256] kernel under a file with batch buckets: equal work everywhere, so
  // bucket differences are noise; the kept configuration applies.
  std::string key = OneKernel().schedule(cuda()).tuneKey;
  auto table =
      perBucket(key, {{1.2, 2.0, 10.0}, {1.3, 2.4, 11.0}, {1.3, 2.4, 8.0}, {1.0, 2.6, 14.0}});
  OneKernel m;
  loop::KernelGroup g = scheduledWith(table, m);
  EXPECT_TRUE(g.cudaVariants.empty());
  EXPECT_EQ(g.cuda.block, 256);
  EXPECT_EQ(g.cuda.vector, 4);
}

TEST(TuningSelection, ABucketBestThatIsNoCandidateIsIgnored) {
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  auto table =
      perBucket(key, {{1.2, 2.0, 10.0}, {1.3, 2.4, 11.0}, {1.3, 2.4, 8.0}, {1.0, 2.6, 14.0}});
  table->kernels[key].configs[3].config = {96, 1, 2}; // batch=1's best: 96 threads, no candidate
  OneKernel m(true);
  loop::KernelGroup g = scheduledWith(table, m);
  ASSERT_EQ(g.cudaVariants.size(), 2u);
  EXPECT_EQ(g.cudaVariants[0].schedule.block, 256);
  EXPECT_EQ(g.cudaVariants[0].ranges, (Ranges{{kMin, 5793}}));
  EXPECT_EQ(g.cudaVariants[1].schedule.block, 512);
}

TEST(TuningSelection, AFileThatDoesNotFitTheModelIsRefusedByName) {
  auto expectRefused = [](std::shared_ptr<sched::TuningTable> table, const std::string &why) {
    OneKernel m(true);
    sched::Target t = cuda();
    t.tuning = table;
    m.schedule(t);
    try {
      sched::checkTuningFits(m.p, t);
      ADD_FAILURE() << "accepted";
    } catch (const UserError &e) {
      EXPECT_NE(std::string(e.what()).find("per-bucket.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  std::vector<std::vector<double>> ms(4, {1.0, 1.0, 1.0});
  expectRefused(perBucket("00000000000000ab", ms), "none of its 1 kernels");
  auto other = perBucket(key, ms);
  other->buckets[1] = {{"seq", 8}};
  expectRefused(other, "names 'seq', which is no dynamic dim");
  OneKernel m(true);
  sched::Target t = cuda();
  t.tuning = perBucket(key, ms);
  m.schedule(t);
  EXPECT_NO_THROW(sched::checkTuningFits(m.p, t));
}

/// Expects readTuningFile to refuse `text` with a message naming the file and `why`.
void expectRefused(const std::string &path, const std::string &text, const std::string &why) {
  std::ofstream(path) << text;
  try {
    sched::readTuningFile(path);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

TEST(Tuning, FileRoundTripAndMalformedFiles) {
  std::string path = ::testing::TempDir() + "kiln_tuning_test.json";
  sched::TuningTable t;
  t.arch = "sm_90";
  t.buckets = {{{"b", 1}}, {{"b", 8}}};
  t.kernels["00000000000000ab"] = {{{{512, 1, 4}, {0.5, 1.25}}, {{256, 1, 4}, {0.75, 1.0}}},
                                   {0, 1}};
  sched::writeTuningFile(t, path);
  EXPECT_NE(std::ifstream(path).peek(), EOF);
  sched::TuningTable r = sched::readTuningFile(path);
  EXPECT_EQ(r.path, path);
  EXPECT_EQ(r.arch, "sm_90");
  EXPECT_EQ(r.buckets, t.buckets);
  ASSERT_EQ(r.kernels.count("00000000000000ab"), 1u);
  const sched::TunedKernel &k = r.kernels["00000000000000ab"];
  ASSERT_EQ(k.configs.size(), 2u);
  EXPECT_EQ(k.configs[0].config, (sched::TuningConfig{512, 1, 4}));
  EXPECT_EQ(k.configs[1].ms, (std::vector<double>{0.75, 1.0}));
  EXPECT_EQ(k.best, (std::vector<int>{0, 1}));
  expectRefused(path, "{not json", "not valid JSON");
  expectRefused(path, R"({"format": "other", "kernels": {}})", "not a kiln tuning file");
  expectRefused(path, R"({"format": "kiln-tuning-1", "kernels": {"k": {"block": 128}}})",
                "malformed");
  const std::string head = R"({"format": "kiln-tuning-2", "buckets": [{"b": 1}, {"b": 8}], )";
  const std::string cfg = R"({"block": 256, "vector": 4, "rows_per_warp": 2, "ms": [1, 2]})";
  expectRefused(path, head + R"("kernels": {"k1": {"configs": [)" + cfg + R"(], "best": [0]}}})",
                "kernel k1 has 1 'best' entries for 2 size buckets");
  expectRefused(path, head + R"("kernels": {"k2": {"configs": [)" + cfg + R"(], "best": [0, 3]}}})",
                "kernel k2: 'best' index 3 is not one of its 1 configs");
  expectRefused(path,
                head + R"("kernels": {"k3": {"configs": [{"block": 256, "vector": 4, )" +
                    R"("rows_per_warp": 2, "ms": [1]}], "best": [0, 0]}}})",
                "kernel k3 config 0 has 1 times for 2 size buckets");
  expectRefused(path, R"({"format": "kiln-tuning-2", "buckets": [{"b": "x"}], "kernels": {}})",
                "gives symbol 'b' a value that is not an integer");
  expectRefused(path, head + R"("kernels": {"k4": {"best": [0, 0]}}})", "malformed");
  std::remove(path.c_str());
  try {
    sched::readTuningFile(path);
    ADD_FAILURE() << "a missing file was accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("cannot be read"), std::string::npos);
  }
}

TEST(Tuning, OldFormatFilesStillRead) {
  // A file as kiln wrote it before per-bucket selection ("kiln-tuning-1").
  std::string path = ::testing::TempDir() + "kiln_tuning_v1.json";
  std::ofstream(path) << R"({"arch": "sm_90", "buckets": ["batch=1,seq=1", "batch=8,seq=23"],
    "format": "kiln-tuning-1", "gpu": "cuda:0", "kernels": {"0242a922527ac49c": {"block": 128,
    "ms": [0.0046, 0.0048], "rows_per_warp": 2, "vector": 4}}})";
  sched::TuningTable r = sched::readTuningFile(path);
  EXPECT_EQ(r.buckets, (std::vector<sched::SizeBucket>{{{"batch", 1}, {"seq", 1}},
                                                       {{"batch", 8}, {"seq", 23}}}));
  const sched::TunedKernel &k = r.kernels.at("0242a922527ac49c");
  ASSERT_EQ(k.configs.size(), 1u);
  EXPECT_EQ(k.configs[0].config, (sched::TuningConfig{128, 4, 2}));
  EXPECT_TRUE(k.best.empty());
  expectRefused(path, R"({"format": "kiln-tuning-1", "buckets": ["batch"], "kernels": {}})",
                "size bucket \"batch\" is not NAME=VALUE");
  std::remove(path.c_str());
  // Applied, an old entry is one configuration for all sizes.
  std::string key = OneKernel(true).schedule(cuda()).tuneKey;
  auto table = std::make_shared<sched::TuningTable>();
  table->buckets = {{{"batch", 1}}, {{"batch", 64}}};
  table->kernels[key] = {{{{128, 4, 2}, {0.0046, 0.0048}}}, {}};
  OneKernel m(true);
  loop::KernelGroup g = scheduledWith(table, m);
  EXPECT_TRUE(g.cudaVariants.empty());
  EXPECT_EQ(g.cuda.block, 128);
}

} // namespace
} // namespace kiln
