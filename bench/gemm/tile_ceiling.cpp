// Where the AVX-512 GEMM stops on this core: the runtime's 9 x 48 register tile
// (src/runtime/gemm_avx512_tile.h) against loops that differ from it by one thing, and the
// whole GEMM (gemmAvx512) against the bare tile walking the same GEMM, at one thread.
//
//   build/release/bench/gemm/kiln_tile_ceiling [--shape M,N,K] [--reps 40] [--peak GFLOPS]
//
// L1 rows: one k-step of the tile repeated with its operands in L1: "tile" (3 B loads and 9
// broadcasts of A per 27 FMAs, as the runtime's loop), "1 broadcast" (3 B loads and one
// broadcast, the other rows reusing its register), "FMAs only" (no loads) and "embedded"
// (3 B loads and 27 FMAs broadcasting A from memory, `{1to16}`). Where "tile" matches "FMAs
// only", loads beside the FMAs cost nothing on this core (Zen 5); where it trails, they do
// (the Intel Xeon of sessions 20-22: 91% against 100%).
// GEMM rows: "bare tiles" runs fullTile<9> over the GEMM's strips and panel groups (K in one
// block, B packed as the runtime packs it, C written, no prefetch of the next block, M rounded
// up to 9-row strips); "gemmAvx512" is the runtime's GEMM (bias epilogue, its plan), the two
// alternating call by call. The gap between them is what the runtime's driver costs; the gap
// to "FMAs only" is what streaming A and B from L2 costs.
#include "gemm.h"
#include "gemm_avx512_tile.h"
#include "gemv.h"
#include "rt_gemm_params.h"
#include "weight_memory.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// clang-format off
#define KT_BROADCAST_ROW(a, r0, r1, r2) "vbroadcastss " a ", %%zmm30\n\t" KT_REG_ROW(r0, r1, r2)
#define KT_REG_ROW(r0, r1, r2)                                                                     \
  "vfmadd231ps %%zmm27, %%zmm30, %%zmm" #r0 "\n\t"                                                 \
  "vfmadd231ps %%zmm28, %%zmm30, %%zmm" #r1 "\n\t"                                                 \
  "vfmadd231ps %%zmm29, %%zmm30, %%zmm" #r2 "\n\t"
#define KT_EMBEDDED_ROW(a, r0, r1, r2)                                                             \
  "vfmadd231ps " a "%{1to16%}, %%zmm27, %%zmm" #r0 "\n\t"                                          \
  "vfmadd231ps " a "%{1to16%}, %%zmm28, %%zmm" #r1 "\n\t"                                          \
  "vfmadd231ps " a "%{1to16%}, %%zmm29, %%zmm" #r2 "\n\t"
#define KT_LOAD_B "vmovaps (%[b]), %%zmm27\n\t vmovaps 64(%[b]), %%zmm28\n\t vmovaps 128(%[b]), %%zmm29\n\t"
#define KT_ROWS(ROW, a)                                                                            \
  ROW(a "0(%[a])", 0, 1, 2) ROW(a "4(%[a])", 3, 4, 5) ROW(a "8(%[a])", 6, 7, 8)                  \
  ROW(a "12(%[a])", 9, 10, 11) ROW(a "16(%[a])", 12, 13, 14) ROW(a "20(%[a])", 15, 16, 17)       \
  ROW(a "24(%[a])", 18, 19, 20) ROW(a "28(%[a])", 21, 22, 23) ROW(a "32(%[a])", 24, 25, 26)
#define KT_STEP_TILE KT_LOAD_B KT_ROWS(KT_BROADCAST_ROW, "")
#define KT_STEP_EMBEDDED KT_LOAD_B KT_ROWS(KT_EMBEDDED_ROW, "")
// Rows 1-8 of a k-step from the broadcast register (the rows after the first).
#define KT_REG_ROWS_1_TO_8                                                                         \
  KT_REG_ROW(3, 4, 5) KT_REG_ROW(6, 7, 8) KT_REG_ROW(9, 10, 11) KT_REG_ROW(12, 13, 14)            \
  KT_REG_ROW(15, 16, 17) KT_REG_ROW(18, 19, 20) KT_REG_ROW(21, 22, 23) KT_REG_ROW(24, 25, 26)
#define KT_STEP_ONE_BROADCAST KT_LOAD_B KT_BROADCAST_ROW("(%[a])", 0, 1, 2) KT_REG_ROWS_1_TO_8
#define KT_STEP_FMAS KT_REG_ROW(0, 1, 2) KT_REG_ROWS_1_TO_8
#define KT_LOOP(STEP)                                                                              \
  asm volatile("1:\n\t" STEP STEP STEP STEP "dec %[n]\n\t jnz 1b"                                  \
               : [n] "+r"(n) : [a] "r"(a), [b] "r"(b)                                              \
               : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",   \
                 "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",   \
                 "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", \
                 "xmm26", "xmm27", "xmm28", "xmm29", "xmm30")
// clang-format on

enum class Step { Tile, OneBroadcast, FmasOnly, Embedded };

/// GFLOP/s of `iters` x 4 k-steps of the chosen L1 loop (27 FMAs of 16 lanes each).
double l1Loop(Step step, long iters) {
  alignas(64) static float aData[64], bData[64];
  const float *a = aData, *b = bData;
  long n = iters;
  const auto t0 = Clock::now();
  switch (step) {
  case Step::Tile:
    KT_LOOP(KT_STEP_TILE);
    break;
  case Step::OneBroadcast:
    KT_LOOP(KT_STEP_ONE_BROADCAST);
    break;
  case Step::FmasOnly:
    KT_LOOP(KT_STEP_FMAS);
    break;
  case Step::Embedded:
    KT_LOOP(KT_STEP_EMBEDDED);
    break;
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return iters * 4.0 * 27 * 32 / s * 1e-9;
}

struct Options {
  long m = 197, n = 3072, k = 768;
  int reps = 40;
  double peak = 0;
};

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool hasValue = i + 1 < argc;
    if (a == "--shape" && hasValue &&
        std::sscanf(argv[++i], "%ld,%ld,%ld", &o.m, &o.n, &o.k) == 3) {
    } else if (a == "--reps" && hasValue) {
      o.reps = std::atoi(argv[++i]);
    } else if (a == "--peak" && hasValue) {
      o.peak = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "unknown or incomplete argument '%s' (see the file's header)\n",
                   argv[i]);
      std::exit(2);
    }
  }
  if (o.m < 9 || o.n < 48 || o.n % 48 || o.k < 2 || o.k > 768 || o.reps < 3) {
    std::fprintf(stderr, "--shape needs M >= 9, N a multiple of 48, K in [2, 768] (one K "
                         "block); --reps at least 3\n");
    std::exit(2);
  }
  return o;
}

void report(const char *name, std::vector<double> g, double peak) {
  std::sort(g.begin(), g.end());
  std::printf("  %-13s best %6.1f  median %6.1f GFLOP/s", name, g.back(), g[g.size() / 2]);
  if (peak > 0)
    std::printf("  (best %.0f%%, median %.0f%% of peak)", 100 * g.back() / peak,
                100 * g[g.size() / 2] / peak);
  std::printf("\n");
}

} // namespace

int main(int argc, char **argv) {
  const Options o = parse(argc, argv);
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "kiln_tile_ceiling: this CPU has no AVX-512F; nothing to measure\n");
    return 77;
  }
  omp_set_num_threads(1);
  std::printf("L1-resident loops, 1 thread (5 rounds alternating):\n");
  const Step steps[] = {Step::Tile, Step::OneBroadcast, Step::FmasOnly, Step::Embedded};
  const char *names[] = {"tile", "1 broadcast", "FMAs only", "embedded"};
  std::vector<double> l1[4];
  for (int round = 0; round < 5; ++round)
    for (int s = 0; s < 4; ++s)
      l1[s].push_back(l1Loop(steps[s], 10'000'000));
  for (int s = 0; s < 4; ++s)
    report(names[s], l1[s], o.peak);

  const long strips = (o.m + 8) / 9, rows = strips * 9, groups = o.n / 48;
  std::vector<float> a(rows * o.k), b(o.k * o.n), bias(o.n, 0.5f), c(rows * o.n);
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = 1e-3f * static_cast<float>(i % 7);
  for (size_t i = 0; i < b.size(); ++i)
    b[i] = 1e-3f * static_cast<float>(i % 5);
  auto packed =
      kiln::rt::allocateWeightBuffer(sizeof(float) * kiln::rt::gemvPackedFloats(o.n, o.k));
  float *pb = static_cast<float *>(packed.get());
  kiln::rt::packGemvWeights(b.data(), o.n, o.k, o.n, false, pb);
  const kiln::rt::GemmParams p =
      kiln::bench::plainGemmParams(o.m, o.n, o.k, bias.data(), kiln::rt::GemmPost::Clamp);
  alignas(64) float out[9 * 48];
  auto bareTiles = [&] {
    for (long pg = 0; pg < groups; ++pg)
      for (long s = 0; s < strips; ++s) {
        // One block of all of K; no prefetch of the next block (prefetchLines 0).
        kiln::rt::avx512tile::FullTileArgs t{.a = a.data() + s * 9 * o.k,
                                             .lda = o.k,
                                             .b = pb + pg * 48 * o.k,
                                             .panelStride = 16 * o.k,
                                             .kc = o.k,
                                             .prefetch = nullptr,
                                             .prefetchLines = 0,
                                             .perPass = 1,
                                             .run = 1,
                                             .jumpBytes = 0,
                                             .nextRun = 1,
                                             .out = out};
        kiln::rt::avx512tile::fullTile<9>(t);
        for (int i = 0; i < 9; ++i)
          std::memcpy(&c[(s * 9 + i) * o.n + pg * 48], out + i * 48, 48 * sizeof(float));
      }
  };
  const double flops = 2.0 * o.m * o.n * o.k;
  std::vector<double> runtime, bare;
  for (int r = -1; r < o.reps; ++r) { // r = -1: warm-up
    const auto t0 = Clock::now();
    kiln::rt::gemmAvx512(p, a.data(), pb, c.data());
    const auto t1 = Clock::now();
    bareTiles();
    const auto t2 = Clock::now();
    if (r < 0) continue;
    runtime.push_back(flops / std::chrono::duration<double>(t1 - t0).count() * 1e-9);
    bare.push_back(2.0 * rows * o.n * o.k / std::chrono::duration<double>(t2 - t1).count() * 1e-9);
  }
  std::printf("GEMM %ld x %ld x %ld, 1 thread, %d calls each, alternating:\n", o.m, o.n, o.k,
              o.reps);
  report("bare tiles", bare, o.peak);
  report("gemmAvx512", runtime, o.peak);
  return 0;
}
