// The AVX-512 GEMM's full register tiles (gemm_avx512.cpp): 8 or 9 rows of A x 3 panels of
// B (48 columns) over one K block, each one asm loop, so that nothing in it is left to the
// compiler's register allocation.
//
// Why asm: written with intrinsics, GCC 12 keeps the 8 row pointers of A, the 3 of B and the
// next block's prefetch state in 16 general registers only by spilling three of them, which
// it reloads from the stack on every k-step, and the prefetch bookkeeping costs a compare
// and branch per k-step (bench/gemm: the asm loop +1-8% at 1 thread, +2-11% at 2). Here the
// rows of A are 3 bases and a stride (rows 0-2, 3-5, 6-8 as base + {0, 1, 2} x stride), the
// panels of B one base and a stride, two k-steps per pass, and the next block's L2
// prefetches run in a first phase of passes of their own. Accumulators are zmm0-26, B
// zmm27-29, the broadcast zmm30.
//
// Compiled with -mavx512f (the file including it).
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::rt::avx512tile {

/// One Rows x 48 tile over kc k-steps of three B panels (each kc x 16, panelStride floats
/// apart, starting at b) and Rows rows of A (from a, lda floats apart), written to out (Rows
/// x 48 floats, row-major, 64-byte aligned) as the plain sum over k. While it runs, it
/// brings `prefetchLines` lines of the next block to L2 starting at `prefetch`, one per
/// `perPass` (1 or 2) per two k-steps: after `run` lines it jumps `jumpBytes` on and
/// continues in runs of `nextRun` lines.
struct FullTileArgs {
  const float *a;
  int64_t lda;
  const float *b;
  int64_t panelStride, kc;
  const char *prefetch;
  int64_t prefetchLines, perPass, run, jumpBytes, nextRun;
  float *out;
};

// One instruction per line in the macros below.
// clang-format off
// One row of a k-step: a broadcast of A at ADDR and three FMAs into that row's accumulators.
#define KILN_T_ROW(addr, r0, r1, r2)                                                               \
  "vbroadcastss " addr ", %%zmm30\n\t"                                                             \
  "vfmadd231ps %%zmm27, %%zmm30, %%zmm" #r0 "\n\t"                                                 \
  "vfmadd231ps %%zmm28, %%zmm30, %%zmm" #r1 "\n\t"                                                 \
  "vfmadd231ps %%zmm29, %%zmm30, %%zmm" #r2 "\n\t"
// Three L1 prefetches at byte offset PFOFF: kPrefetchSteps (8) k-steps ahead of the loads.
#define KILN_T_PREFETCH_L1(PFOFF)                                                                  \
  "prefetcht0 " PFOFF "(%[b])\n\t"                                                                 \
  "prefetcht0 " PFOFF "(%[b],%[ps])\n\t"                                                           \
  "prefetcht0 " PFOFF "(%[b],%[ps],2)\n\t"
// One k-step at byte offsets AOFF (A) and BOFF (B): three B vectors, L1 (their prefetches),
// then 8 rows and ROW8 (the ninth row, or nothing).
#define KILN_T_STEP(AOFF, BOFF, L1, ROW8)                                                          \
  "vmovups " BOFF "(%[b]), %%zmm27\n\t"                                                            \
  "vmovups " BOFF "(%[b],%[ps]), %%zmm28\n\t"                                                      \
  "vmovups " BOFF "(%[b],%[ps],2), %%zmm29\n\t"                                                    \
  L1                                                                                               \
  KILN_T_ROW(AOFF "(%[a0])", 0, 1, 2)                                                              \
  KILN_T_ROW(AOFF "(%[a0],%[ld])", 3, 4, 5)                                                        \
  KILN_T_ROW(AOFF "(%[a0],%[ld],2)", 6, 7, 8)                                                      \
  KILN_T_ROW(AOFF "(%[a3])", 9, 10, 11)                                                            \
  KILN_T_ROW(AOFF "(%[a3],%[ld])", 12, 13, 14)                                                     \
  KILN_T_ROW(AOFF "(%[a3],%[ld],2)", 15, 16, 17)                                                   \
  KILN_T_ROW(AOFF "(%[a6])", 18, 19, 20)                                                           \
  KILN_T_ROW(AOFF "(%[a6],%[ld])", 21, 22, 23)                                                     \
  ROW8
#define KILN_T_ROW8(AOFF) KILN_T_ROW(AOFF "(%[a6],%[ld],2)", 24, 25, 26)
// Two k-steps, with or without the ninth row.
#define KILN_T_PAIR_8                                                                              \
  KILN_T_STEP("0", "0", KILN_T_PREFETCH_L1("512"), "")                                             \
  KILN_T_STEP("4", "64", KILN_T_PREFETCH_L1("576"), "")
#define KILN_T_PAIR_9                                                                              \
  KILN_T_STEP("0", "0", KILN_T_PREFETCH_L1("512"), KILN_T_ROW8("0"))                               \
  KILN_T_STEP("4", "64", KILN_T_PREFETCH_L1("576"), KILN_T_ROW8("4"))
#define KILN_T_SINGLE_8 KILN_T_STEP("0", "0", KILN_T_PREFETCH_L1("512"), "")
#define KILN_T_SINGLE_9 KILN_T_STEP("0", "0", KILN_T_PREFETCH_L1("512"), KILN_T_ROW8("0"))
#define KILN_T_ADVANCE(A, B)                                                                       \
  "add $" #A ", %[a0]\n\t"                                                                         \
  "add $" #A ", %[a3]\n\t"                                                                         \
  "add $" #A ", %[a6]\n\t"                                                                         \
  "add $" #B ", %[b]\n\t"
// One line of the next block to L2, then on to the next; at a run's end, on to the next run.
#define KILN_T_PREFETCH_L2                                                                         \
  "prefetcht1 (%[pf])\n\t"                                                                         \
  "add $64, %[pf]\n\t"                                                                             \
  "dec %[run]\n\t"                                                                                 \
  "jnz 3f\n\t"                                                                                     \
  "add %[jump], %[pf]\n\t"                                                                         \
  "mov %[nextRun], %[run]\n\t"                                                                     \
  "3:\n\t"
#define KILN_T_STORE(r, off) "vmovaps %%zmm" #r ", " #off "(%[out])\n\t"
#define KILN_T_STORE_8                                                                             \
  KILN_T_STORE(0, 0) KILN_T_STORE(1, 64) KILN_T_STORE(2, 128) KILN_T_STORE(3, 192)                 \
  KILN_T_STORE(4, 256) KILN_T_STORE(5, 320) KILN_T_STORE(6, 384) KILN_T_STORE(7, 448)              \
  KILN_T_STORE(8, 512) KILN_T_STORE(9, 576) KILN_T_STORE(10, 640) KILN_T_STORE(11, 704)            \
  KILN_T_STORE(12, 768) KILN_T_STORE(13, 832) KILN_T_STORE(14, 896) KILN_T_STORE(15, 960)          \
  KILN_T_STORE(16, 1024) KILN_T_STORE(17, 1088) KILN_T_STORE(18, 1152) KILN_T_STORE(19, 1216)      \
  KILN_T_STORE(20, 1280) KILN_T_STORE(21, 1344) KILN_T_STORE(22, 1408) KILN_T_STORE(23, 1472)
#define KILN_T_STORE_9                                                                             \
  KILN_T_STORE_8 KILN_T_STORE(24, 1536) KILN_T_STORE(25, 1600) KILN_T_STORE(26, 1664)

// The whole tile: zero the accumulators, passes that also prefetch (PREFETCH each), plain
// passes (PAIR), an odd last k-step (SINGLE), the accumulators out (STORE).
#define KILN_T_BODY(PREFETCH, PAIR, SINGLE, STORE)                                                 \
  "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"                                                              \
  "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"               \
  "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"               \
  "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"               \
  "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"            \
  "vmovaps %%zmm0, %%zmm13\n\t vmovaps %%zmm0, %%zmm14\n\t vmovaps %%zmm0, %%zmm15\n\t"            \
  "vmovaps %%zmm0, %%zmm16\n\t vmovaps %%zmm0, %%zmm17\n\t vmovaps %%zmm0, %%zmm18\n\t"            \
  "vmovaps %%zmm0, %%zmm19\n\t vmovaps %%zmm0, %%zmm20\n\t vmovaps %%zmm0, %%zmm21\n\t"            \
  "vmovaps %%zmm0, %%zmm22\n\t vmovaps %%zmm0, %%zmm23\n\t vmovaps %%zmm0, %%zmm24\n\t"            \
  "vmovaps %%zmm0, %%zmm25\n\t vmovaps %%zmm0, %%zmm26\n\t"                                        \
  "test %[npf], %[npf]\n\t"                                                                        \
  "jz 2f\n\t"                                                                                      \
  "1:\n\t"                                                                                         \
  PREFETCH PAIR KILN_T_ADVANCE(8, 128)                                                             \
  "dec %[npf]\n\t"                                                                                 \
  "jnz 1b\n\t"                                                                                     \
  "2:\n\t"                                                                                         \
  "test %[nplain], %[nplain]\n\t"                                                                  \
  "jz 5f\n\t"                                                                                      \
  "4:\n\t"                                                                                         \
  PAIR KILN_T_ADVANCE(8, 128)                                                                      \
  "dec %[nplain]\n\t"                                                                              \
  "jnz 4b\n\t"                                                                                     \
  "5:\n\t"                                                                                         \
  "test %[odd], %[odd]\n\t"                                                                        \
  "jz 6f\n\t"                                                                                      \
  SINGLE                                                                                           \
  "6:\n\t"                                                                                         \
  STORE
#define KILN_T_OPERANDS                                                                            \
  : [a0] "+r"(a0), [a3] "+r"(a3), [a6] "+r"(a6), [b] "+r"(b), [pf] "+r"(pf), [run] "+r"(run),     \
    [npf] "+r"(prefetchPairs), [nplain] "+r"(plainPairs)                                          \
  : [ld] "r"(ld), [ps] "r"(ps), [odd] "r"(odd), [jump] "m"(jump), [nextRun] "m"(nextRun),         \
    [out] "r"(t.out)                                                                              \
  : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",       \
    "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",      \
    "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",     \
    "xmm29", "xmm30"
#define KILN_T_ASM(PAIR, SINGLE, STORE)                                                            \
  if (t.perPass == 2)                                                                              \
    asm volatile(KILN_T_BODY(KILN_T_PREFETCH_L2 KILN_T_PREFETCH_L2, PAIR, SINGLE, STORE)           \
                     KILN_T_OPERANDS);                                                             \
  else                                                                                             \
    asm volatile(KILN_T_BODY(KILN_T_PREFETCH_L2, PAIR, SINGLE, STORE) KILN_T_OPERANDS);

// clang-format on

template <int Rows> inline void fullTile(const FullTileArgs &t) {
  static_assert(Rows == 8 || Rows == 9);
  const char *a0 = reinterpret_cast<const char *>(t.a);
  const int64_t ld = t.lda * 4;
  const char *a3 = a0 + 3 * ld, *a6 = a0 + 6 * ld;
  const char *b = reinterpret_cast<const char *>(t.b);
  const int64_t ps = t.panelStride * 4;
  const int64_t pairs = t.kc / 2;
  int64_t prefetchPairs =
      t.prefetchLines > 0 ? std::min(pairs, (t.prefetchLines + t.perPass - 1) / t.perPass) : 0;
  int64_t plainPairs = pairs - prefetchPairs;
  const int64_t odd = t.kc & 1;
  const char *pf = t.prefetch;
  int64_t run = t.run;
  const int64_t jump = t.jumpBytes, nextRun = t.nextRun;
  if constexpr (Rows == 9) {
    KILN_T_ASM(KILN_T_PAIR_9, KILN_T_SINGLE_9, KILN_T_STORE_9)
  } else {
    KILN_T_ASM(KILN_T_PAIR_8, KILN_T_SINGLE_8, KILN_T_STORE_8)
  }
}

#undef KILN_T_ROW
#undef KILN_T_PREFETCH_L1
#undef KILN_T_STEP
#undef KILN_T_ROW8
#undef KILN_T_PAIR_8
#undef KILN_T_PAIR_9
#undef KILN_T_SINGLE_8
#undef KILN_T_SINGLE_9
#undef KILN_T_ADVANCE
#undef KILN_T_PREFETCH_L2
#undef KILN_T_STORE
#undef KILN_T_STORE_8
#undef KILN_T_STORE_9
#undef KILN_T_BODY
#undef KILN_T_OPERANDS
#undef KILN_T_ASM

} // namespace kiln::rt::avx512tile
