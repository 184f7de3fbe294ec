// x86 ISA extensions a model's host code may need, as one table used on both sides: the
// compiler maps the feature macros of `g++ -march=X` to these names (what model.so records
// in kiln_model_desc_v1.cpu_features), and libkiln_rt checks them with CPUID before a
// container is created, so a model built for a newer CPU is refused with a message instead
// of dying with SIGILL. Extensions missing here (rarely emitted by a compiler for numeric
// code: clflushopt, pku, ...) are not checked.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kiln::cpu {

enum class Reg : uint8_t { Eax, Ebx, Ecx, Edx };

struct Feature {
  const char *name;  // as recorded in model.so: gcc's macro, lower case, without underscores
  const char *macro; // defined by g++ when the -march enables it
  uint32_t leaf, subleaf;
  Reg reg;
  uint8_t bit;
  uint8_t osState; // XCR0 bits the OS must enable (0: none; 0x6: AVX state; 0xe6: AVX-512)
};

// clang-format off
inline constexpr Feature kFeatures[] = {
    {"sse3", "__SSE3__", 1, 0, Reg::Ecx, 0, 0},
    {"pclmul", "__PCLMUL__", 1, 0, Reg::Ecx, 1, 0},
    {"ssse3", "__SSSE3__", 1, 0, Reg::Ecx, 9, 0},
    {"fma", "__FMA__", 1, 0, Reg::Ecx, 12, 0x6},
    {"cx16", "__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16", 1, 0, Reg::Ecx, 13, 0},
    {"sse4_1", "__SSE4_1__", 1, 0, Reg::Ecx, 19, 0},
    {"sse4_2", "__SSE4_2__", 1, 0, Reg::Ecx, 20, 0},
    {"movbe", "__MOVBE__", 1, 0, Reg::Ecx, 22, 0},
    {"popcnt", "__POPCNT__", 1, 0, Reg::Ecx, 23, 0},
    {"aes", "__AES__", 1, 0, Reg::Ecx, 25, 0},
    {"xsave", "__XSAVE__", 1, 0, Reg::Ecx, 26, 0},
    {"avx", "__AVX__", 1, 0, Reg::Ecx, 28, 0x6},
    {"f16c", "__F16C__", 1, 0, Reg::Ecx, 29, 0x6},
    {"rdrnd", "__RDRND__", 1, 0, Reg::Ecx, 30, 0},
    {"bmi", "__BMI__", 7, 0, Reg::Ebx, 3, 0},
    {"avx2", "__AVX2__", 7, 0, Reg::Ebx, 5, 0x6},
    {"bmi2", "__BMI2__", 7, 0, Reg::Ebx, 8, 0},
    {"avx512f", "__AVX512F__", 7, 0, Reg::Ebx, 16, 0xe6},
    {"avx512dq", "__AVX512DQ__", 7, 0, Reg::Ebx, 17, 0xe6},
    {"rdseed", "__RDSEED__", 7, 0, Reg::Ebx, 18, 0},
    {"adx", "__ADX__", 7, 0, Reg::Ebx, 19, 0},
    {"avx512ifma", "__AVX512IFMA__", 7, 0, Reg::Ebx, 21, 0xe6},
    {"avx512cd", "__AVX512CD__", 7, 0, Reg::Ebx, 28, 0xe6},
    {"sha", "__SHA__", 7, 0, Reg::Ebx, 29, 0},
    {"avx512bw", "__AVX512BW__", 7, 0, Reg::Ebx, 30, 0xe6},
    {"avx512vl", "__AVX512VL__", 7, 0, Reg::Ebx, 31, 0xe6},
    {"avx512vbmi", "__AVX512VBMI__", 7, 0, Reg::Ecx, 1, 0xe6},
    {"avx512vbmi2", "__AVX512VBMI2__", 7, 0, Reg::Ecx, 6, 0xe6},
    {"gfni", "__GFNI__", 7, 0, Reg::Ecx, 8, 0},
    {"vaes", "__VAES__", 7, 0, Reg::Ecx, 9, 0x6},
    {"vpclmulqdq", "__VPCLMULQDQ__", 7, 0, Reg::Ecx, 10, 0x6},
    {"avx512vnni", "__AVX512VNNI__", 7, 0, Reg::Ecx, 11, 0xe6},
    {"avx512bitalg", "__AVX512BITALG__", 7, 0, Reg::Ecx, 12, 0xe6},
    {"avx512vpopcntdq", "__AVX512VPOPCNTDQ__", 7, 0, Reg::Ecx, 14, 0xe6},
    {"avx512vp2intersect", "__AVX512VP2INTERSECT__", 7, 0, Reg::Edx, 8, 0xe6},
    {"avx512fp16", "__AVX512FP16__", 7, 0, Reg::Edx, 23, 0xe6},
    {"avxvnni", "__AVXVNNI__", 7, 1, Reg::Eax, 4, 0x6},
    {"avx512bf16", "__AVX512BF16__", 7, 1, Reg::Eax, 5, 0xe6},
    {"lzcnt", "__LZCNT__", 0x80000001, 0, Reg::Ecx, 5, 0},
    {"sse4a", "__SSE4A__", 0x80000001, 0, Reg::Ecx, 6, 0},
    {"prfchw", "__PRFCHW__", 0x80000001, 0, Reg::Ecx, 8, 0},
    {"xop", "__XOP__", 0x80000001, 0, Reg::Ecx, 11, 0x6},
    {"fma4", "__FMA4__", 0x80000001, 0, Reg::Ecx, 16, 0x6},
};
// clang-format on

/// Whether this CPU (and the OS, for wider registers) supports `f`.
inline bool cpuHas(const Feature &f) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid_count(f.leaf, f.subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  if (!((r[static_cast<int>(f.reg)] >> f.bit) & 1u)) return false;
  if (!f.osState) return true;
  // The OS must save the wider registers: OSXSAVE set, then XCR0 holds the state bits.
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & f.osState) == f.osState;
#else
  (void)f;
  return false;
#endif
}

/// A set of kFeatures entries: bit i stands for kFeatures[i].
using FeatureMask = uint64_t;
static_assert(sizeof(kFeatures) / sizeof(kFeatures[0]) <= 64, "FeatureMask has 64 bits");

/// The mask of the features named in a comma-separated list (unknown names are ignored).
inline FeatureMask maskOf(const char *list) {
  FeatureMask m = 0;
  for (const char *at = list; at && *at;) {
    const char *comma = std::strchr(at, ',');
    size_t len = comma ? static_cast<size_t>(comma - at) : std::strlen(at);
    for (size_t i = 0; i < sizeof(kFeatures) / sizeof(kFeatures[0]); ++i)
      if (std::strlen(kFeatures[i].name) == len && std::strncmp(kFeatures[i].name, at, len) == 0)
        m |= FeatureMask{1} << i;
    at = comma ? comma + 1 : nullptr;
  }
  return m;
}

/// The one probe of this CPU (CPUID and XCR0), taken once. Every check goes through a mask,
/// so a test can ask what another CPU would say (cpu_check_test.cpp).
inline FeatureMask probeThisCpu() {
  static const FeatureMask mask = [] {
    FeatureMask m = 0;
    for (size_t i = 0; i < sizeof(kFeatures) / sizeof(kFeatures[0]); ++i)
      if (cpuHas(kFeatures[i])) m |= FeatureMask{1} << i;
    return m;
  }();
  return mask;
}

/// The names in a comma-separated list that a CPU with features `have` lacks, comma-separated
/// ("" when none; `have` defaults to this CPU). Unknown names are not checked.
inline std::string missingFeatures(const char *list, FeatureMask have = probeThisCpu()) {
  std::string missing;
  FeatureMask need = maskOf(list);
  for (size_t i = 0; i < sizeof(kFeatures) / sizeof(kFeatures[0]); ++i)
    if ((need >> i & 1u) && !(have >> i & 1u))
      missing += (missing.empty() ? "" : ",") + std::string(kFeatures[i].name);
  return missing;
}

/// The highest x86-64 psABI level a CPU with features `have` reaches ("x86-64-v3"), for
/// messages; "x86-64" below v2. (LAHF/SAHF of v2 is not in the table; every v2 CPU has it.)
inline const char *levelName(FeatureMask have) {
  const FeatureMask v2 = maskOf("cx16,popcnt,sse3,sse4_1,sse4_2,ssse3");
  const FeatureMask v3 = v2 | maskOf("avx,avx2,bmi,bmi2,f16c,fma,lzcnt,movbe,xsave");
  const FeatureMask v4 = v3 | maskOf("avx512f,avx512bw,avx512cd,avx512dq,avx512vl");
  if ((have & v4) == v4) return "x86-64-v4";
  if ((have & v3) == v3) return "x86-64-v3";
  if ((have & v2) == v2) return "x86-64-v2";
  return "x86-64";
}

} // namespace kiln::cpu
