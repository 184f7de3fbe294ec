// The CPU feature check (issue 10) on CPUs this machine is not: libkiln_rt probes the CPU
// once (cpu::probeThisCpu) and checks every model against a feature mask, so these tests
// hand it the mask of another CPU. The models are real: `kiln compile --cpu x86-64-v4` and
// `--cpu x86-64-v3` outputs (paths in KILN_TEST_MODEL_V4 / _V3, set by ctest), whose
// descriptors come from their own kiln_model_descriptor().
#include "container.h"
#include "cpu_features.h"
#include "error.h"
#include "isa_cap.h"
#include "model_container_probe.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <utility>

namespace {

using kiln::cpu::FeatureMask;
using kiln::cpu::maskOf;

// The feature sets of the x86-64 psABI levels (plus what a -march of that level makes g++
// define on its own: none beyond these for v2/v3).
const FeatureMask kV2 = maskOf("cx16,popcnt,sse3,sse4_1,sse4_2,ssse3");
const FeatureMask kV3 = kV2 | maskOf("avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe,xsave");
const FeatureMask kV4 = kV3 | maskOf("avx512f,avx512bw,avx512cd,avx512dq,avx512vl");

const kiln_model_desc_v1 &descriptorOf(const char *env) {
  const char *path = std::getenv(env);
  if (!path) throw std::runtime_error(std::string(env) + " is not set (run through ctest)");
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL); // kept open: the descriptor lives there
  if (!lib) throw std::runtime_error(std::string("dlopen: ") + dlerror());
  using DescFn = const kiln_model_desc_v1 *(*)();
  auto fn = reinterpret_cast<DescFn>(dlsym(lib, "kiln_model_descriptor"));
  if (!fn) throw std::runtime_error(std::string(path) + " has no kiln_model_descriptor");
  return *fn();
}

TEST(CpuFeatures, MaskAndMissing) {
  EXPECT_EQ(maskOf("avx2,nonsense,fma"), maskOf("fma,avx2"));
  EXPECT_EQ(kiln::cpu::missingFeatures("avx512f,avx2,avx512vl", kV3), "avx512f,avx512vl");
  EXPECT_EQ(kiln::cpu::missingFeatures("avx512f,avx2", kV4), "");
  EXPECT_EQ(kiln::cpu::missingFeatures("", 0), "");
  EXPECT_STREQ(kiln::cpu::levelName(kV4), "x86-64-v4");
  EXPECT_STREQ(kiln::cpu::levelName(kV3), "x86-64-v3");
  EXPECT_STREQ(kiln::cpu::levelName(kV3 & ~maskOf("fma")), "x86-64-v2");
  EXPECT_STREQ(kiln::cpu::levelName(0), "x86-64");
}

TEST(CpuFeatures, ThisCpuIsAtLeastV2) {
  // Every machine kiln builds on is v2 (the compat corpus is built for it); a probe that
  // returned nothing would make every model look unrunnable.
  EXPECT_EQ(kiln::cpu::probeThisCpu() & kV2, kV2);
}

TEST(CpuCheck, V4ModelOnAnAvx2OnlyCpuIsRefusedNamingBothIsas) {
  const kiln_model_desc_v1 &desc = descriptorOf("KILN_TEST_MODEL_V4");
  ASSERT_STREQ(desc.cpu_isa, "x86-64-v4");
  EXPECT_EQ(kiln::rt::checkCpuFeatures(desc, kV3), KILN_ERR_DEVICE);
  std::string msg = kiln::rt::lastError();
  EXPECT_NE(msg.find("compiled for CPU 'x86-64-v4'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("this CPU (x86-64-v3) lacks"), std::string::npos) << msg;
  for (const char *f : {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})
    EXPECT_NE(msg.find(f), std::string::npos) << f << " not named in: " << msg;
  EXPECT_EQ(msg.find("avx2"), std::string::npos) << "avx2 is not missing: " << msg;
  EXPECT_NE(msg.find("--cpu x86-64-v3"), std::string::npos) << msg;
  // On a v4 CPU the same model passes.
  EXPECT_EQ(kiln::rt::checkCpuFeatures(desc, kV4), KILN_OK) << kiln::rt::lastError();
}

TEST(CpuCheck, V3ModelLoadsOnAnAvx2CpuAndIsRefusedOnV2) {
  const kiln_model_desc_v1 &desc = descriptorOf("KILN_TEST_MODEL_V3");
  ASSERT_STREQ(desc.cpu_isa, "x86-64-v3");
  EXPECT_EQ(kiln::rt::checkCpuFeatures(desc, kV3), KILN_OK) << kiln::rt::lastError();
  // And through the model's own C API on this (v3 or better) CPU: the container is created.
  if ((kiln::cpu::probeThisCpu() & kV3) == kV3) {
    EXPECT_EQ(kiln::test::containerCreateStatus(std::getenv("KILN_TEST_MODEL_V3")), KILN_OK);
  }
  EXPECT_EQ(kiln::rt::checkCpuFeatures(desc, kV2), KILN_ERR_DEVICE);
  std::string msg = kiln::rt::lastError();
  EXPECT_NE(msg.find("this CPU (x86-64-v2) lacks"), std::string::npos) << msg;
  EXPECT_NE(msg.find("avx2"), std::string::npos) << msg;
}

TEST(CpuCheck, TheRealProbeDecidesByDefault) {
  // With this CPU's own mask the answer is what CPUID says: a v4 model runs here exactly when
  // this CPU has AVX-512 (both kinds of build machine are seen).
  const kiln_model_desc_v1 &desc = descriptorOf("KILN_TEST_MODEL_V4");
  bool v4 = (kiln::cpu::probeThisCpu() & kV4) == kV4;
  EXPECT_EQ(kiln::rt::checkCpuFeatures(desc), v4 ? KILN_OK : KILN_ERR_DEVICE);
}

// ONEDNN_MAX_CPU_ISA caps kiln's own kernels as it caps oneDNN (isa_cap.h): the names oneDNN
// documents, in either case, map to the vector width kiln may use.
TEST(IsaCap, FollowsOneDnnCap) {
  const char *saved = std::getenv("ONEDNN_MAX_CPU_ISA");
  const std::string keep = saved ? saved : "";
  const std::pair<const char *, int> cases[] = {{"", 512},
                                                {"ALL", 512},
                                                {"avx512_core", 512},
                                                {"AVX512_CORE_AMX", 512},
                                                {"AMX_BF16", 512},
                                                {"AVX10_1_512", 512},
                                                {"AVX2", 256},
                                                {"avx2_vnni", 256},
                                                {"AVX2_VNNI_2", 256},
                                                {"AVX", 0},
                                                {"SSE41", 0},
                                                {"nonsense", 0}};
  for (const auto &[value, bits] : cases) {
    setenv("ONEDNN_MAX_CPU_ISA", value, 1);
    EXPECT_EQ(kiln::rt::isaCapBits(), bits) << "ONEDNN_MAX_CPU_ISA=" << value;
  }
  unsetenv("ONEDNN_MAX_CPU_ISA");
  EXPECT_EQ(kiln::rt::isaCapBits(), 512);
  if (saved) setenv("ONEDNN_MAX_CPU_ISA", keep.c_str(), 1);
}

} // namespace
