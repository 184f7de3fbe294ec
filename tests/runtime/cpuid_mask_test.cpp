// bench/cpuid_mask's LD_PRELOAD library (ctest preloads it): on an AVX-512 machine the process
// must see an AVX2-only x86-64-v3 CPU — in kiln's own probe, in raw CPUID, and in what the
// runtime does with a real v4 model — while faults that are not CPUID still kill it.
#include "cpu_features.h"
#include "model_container_probe.h"

#include "kiln/model.h"

#include <gtest/gtest.h>

#include <cpuid.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace {

// The kernel's flags, which CPUID faulting does not touch: what the hardware really has.
bool kernelReports(const std::string &flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;)
      if (w == flag) return true;
    return false;
  }
  return false;
}

class Avx2OnlyShim : public ::testing::Test {
protected:
  void SetUp() override {
    if (!std::getenv("LD_PRELOAD")) GTEST_SKIP() << "run through ctest (it preloads the shim)";
    if (!kernelReports("avx512f")) GTEST_SKIP() << "this CPU has no AVX-512 to hide";
  }
};

TEST_F(Avx2OnlyShim, KilnSeesAnAvx2OnlyCpu) {
  kiln::cpu::FeatureMask have = kiln::cpu::probeThisCpu();
  EXPECT_EQ(kiln::cpu::missingFeatures("avx,avx2,fma,bmi2,f16c,movbe", have), "");
  EXPECT_EQ(kiln::cpu::missingFeatures("avx512f,avx512bw,avx512cd,avx512dq,avx512vl", have),
            "avx512f,avx512dq,avx512cd,avx512bw,avx512vl");
  EXPECT_STREQ(kiln::cpu::levelName(have), "x86-64-v3");
}

TEST_F(Avx2OnlyShim, RawCpuidHidesAvx512AndAmx) {
  unsigned a, b, c, d;
  ASSERT_TRUE(__get_cpuid_count(7, 0, &a, &b, &c, &d));
  EXPECT_EQ(b & (1u << 16), 0u) << "AVX512F";
  EXPECT_NE(b & (1u << 5), 0u) << "AVX2 must stay";
  EXPECT_EQ(d & ((1u << 22) | (1u << 24) | (1u << 25)), 0u) << "AMX";
  ASSERT_TRUE(__get_cpuid(1, &a, &b, &c, &d));
  EXPECT_NE(c & (1u << 12), 0u) << "FMA must stay";
}

TEST_F(Avx2OnlyShim, RuntimeRefusesAV4ModelAndRunsAV3One) {
  const char *v4 = std::getenv("KILN_TEST_MODEL_V4"), *v3 = std::getenv("KILN_TEST_MODEL_V3");
  ASSERT_TRUE(v4 && v3) << "KILN_TEST_MODEL_V4/_V3 are not set (run through ctest)";
  EXPECT_EQ(kiln::test::containerCreateStatus(v4), KILN_ERR_DEVICE);
  EXPECT_EQ(kiln::test::containerCreateStatus(v3), KILN_OK);
}

bool cpuidShowsAvx512() {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 16));
}

void programHandler(int) {
  std::fputs("the program's own handler ran\n", stderr);
  std::_Exit(3);
}

// Node resets every signal disposition at start and V8 installs its own SIGSEGV handler:
// CPUID must stay hidden after both, and the program's handler must still get its faults.
TEST_F(Avx2OnlyShim, SurvivesTheProgramsOwnSigsegvHandling) {
  std::signal(SIGSEGV, SIG_DFL);
  EXPECT_FALSE(cpuidShowsAvx512());
  struct sigaction action = {}, previous = {};
  action.sa_handler = programHandler;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGSEGV, &action, &previous), 0);
  EXPECT_EQ(previous.sa_handler, SIG_DFL); // the program sees what it set, not the shim's
  EXPECT_FALSE(cpuidShowsAvx512());
  struct sigaction now = {};
  ASSERT_EQ(sigaction(SIGSEGV, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, programHandler);
  EXPECT_EXIT(
      {
        volatile int *nowhere = nullptr;
        *nowhere = 1;
      },
      ::testing::ExitedWithCode(3), "the program's own handler ran");
  ASSERT_EQ(sigaction(SIGSEGV, &previous, nullptr), 0);
}

TEST_F(Avx2OnlyShim, OtherSegfaultsStillKill) {
  EXPECT_DEATH(
      {
        volatile int *nowhere = nullptr;
        *nowhere = 1;
      },
      "");
}

} // namespace
