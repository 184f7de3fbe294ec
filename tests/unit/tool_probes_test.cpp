// The toolchain probes kept in the cache (aot/tool_probes.h): an answer is computed once per
// key and read back after; a record cut short or stored for another key is not an answer; a
// cache that cannot be written still answers; the cached -march answer equals g++'s own.
#include "aot/cpu_isa.h"
#include "aot/tool_probes.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fs = std::filesystem;

fs::path freshDir(const std::string &name) {
  fs::path d = fs::temp_directory_path() / ("kiln-probe-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  return d;
}

/// The one record file under <dir>/probes.
fs::path onlyRecord(const fs::path &dir) {
  fs::path found;
  int n = 0;
  for (const auto &e : fs::directory_iterator(dir / "probes")) {
    found = e.path();
    ++n;
  }
  EXPECT_EQ(n, 1);
  return found;
}

TEST(ToolProbes, ComputedOnceThenRead) {
  fs::path dir = freshDir("once");
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("answer\nwith two lines");
  };
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "key A", compute), "answer\nwith two lines");
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "key A", compute), "answer\nwith two lines");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "key B", compute), "answer\nwith two lines");
  EXPECT_EQ(calls, 2);
  // An empty answer is an answer (GNU ld: no -fuse-ld flag).
  auto empty = [&] {
    ++calls;
    return std::string();
  };
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "key C", empty), "");
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "key C", empty), "");
  EXPECT_EQ(calls, 3);
  fs::remove_all(dir);
}

TEST(ToolProbes, ARecordCutShortOrOfAnotherKeyIsComputedAgain) {
  fs::path dir = freshDir("cut");
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("fresh");
  };
  kiln::aot::cachedProbe(dir, "the key", compute);
  fs::path record = onlyRecord(dir);
  std::string full;
  {
    std::ifstream in(record);
    full.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Cut short: the end marker is missing.
  std::ofstream(record, std::ios::trunc) << full.substr(0, full.size() - 5);
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "the key", compute), "fresh");
  EXPECT_EQ(calls, 2);
  // Another key's record under this key's file name (a hash collision) is not read.
  std::ofstream(record, std::ios::trunc) << "other key\nstale\n#end-of-probe\n";
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "the key", compute), "fresh");
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(kiln::aot::cachedProbe(dir, "the key", compute), "fresh");
  EXPECT_EQ(calls, 3);
  fs::remove_all(dir);
}

TEST(ToolProbes, ACacheThatCannotBeWrittenStillAnswers) {
  fs::path file = freshDir("file");
  std::ofstream(file) << "a file where the cache directory should be";
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("x");
  };
  EXPECT_EQ(kiln::aot::cachedProbe(file, "k", compute), "x");
  EXPECT_EQ(kiln::aot::cachedProbe(file, "k", compute), "x");
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(kiln::aot::cachedProbe("", "k", compute), "x");
  EXPECT_EQ(calls, 3);
  fs::remove(file);
}

TEST(ToolProbes, IdentitiesNameTheToolAndTheCpu) {
  std::string gxx = kiln::aot::toolIdentity("g++");
  EXPECT_NE(gxx, "none");
  EXPECT_NE(gxx.find(':'), std::string::npos) << gxx;
  EXPECT_EQ(kiln::aot::toolIdentity("kiln-no-such-tool-anywhere"), "none");
  std::string cpu = kiln::aot::cpuIdentity();
  EXPECT_NE(cpu.find("flags"), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("model name"), std::string::npos) << cpu;
}

TEST(ToolProbes, CachedCpuAnswerEqualsTheCompilers) {
  fs::path dir = freshDir("isa");
  for (const char *cpu : {"native", "x86-64-v3"}) {
    kiln::aot::CpuIsa direct = kiln::aot::resolveCpuIsa(cpu, "");
    for (int round = 0; round < 2; ++round) { // computed, then read back
      kiln::aot::CpuIsa cached = kiln::aot::resolveCpuIsa(cpu, dir);
      EXPECT_EQ(cached.march, direct.march) << cpu;
      EXPECT_EQ(cached.name, direct.name) << cpu;
      EXPECT_EQ(cached.features, direct.features) << cpu;
    }
  }
  EXPECT_NE(kiln::aot::resolveCpuIsa("x86-64-v3", dir).features.find("avx2"), std::string::npos);
  // A name g++ rejects is an error every time: failures are not stored.
  for (int round = 0; round < 2; ++round)
    EXPECT_THROW(kiln::aot::resolveCpuIsa("no-such-cpu-kiln", dir), kiln::UserError);
  fs::remove_all(dir);
}

} // namespace
