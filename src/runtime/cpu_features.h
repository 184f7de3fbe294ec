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

/// The names in a comma-separated list that this CPU lacks, comma-separated ("" when none).
/// Unknown names are not checked.
inline std::string missingFeatures(const char *list) {
  std::string missing;
  for (const char *at = list; at && *at;) {
    const char *comma = std::strchr(at, ',');
    size_t len = comma ? static_cast<size_t>(comma - at) : std::strlen(at);
    for (const Feature &f : kFeatures)
      if (std::strlen(f.name) == len && std::strncmp(f.name, at, len) == 0 && !cpuHas(f))
        missing += (missing.empty() ? "" : ",") + std::string(f.name);
    at = comma ? comma + 1 : nullptr;
  }
  return missing;
}

} // namespace kiln::cpu
