// fp32 FMA peak of this machine: a register-only loop of independent fused multiply-adds
// (no loads or stores), AVX-512 or AVX2 as cpuid says, timed per core and on N threads.
// It is the "% of peak" denominator of the perf tables (bench/compare.py, docs/perf.md).
//
//   g++ -O2 -pthread bench/peak/fma_peak.cpp -o fma_peak
//   ./fma_peak [--threads N] [--seconds S] [--isa avx2|avx512] [--json]
//
// Each accumulator is its own dependency chain; 16 chains (AVX-512) or 12 (AVX2) cover
// the latency x throughput of two FMA pipes on current x86 cores. Multiplying by a value
// just below 1 and adding a small one keeps the values finite forever.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr long kInner = 1 << 14; // FMAs per chain between clock reads

__attribute__((target("avx2,fma"))) double avx2Loop(long iterations, float *sink) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i)
    a[i] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (long it = 0; it < iterations; ++it)
    for (long j = 0; j < kInner; ++j) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i)
        a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i)
    s = _mm256_add_ps(s, a[i]);
  _mm256_storeu_ps(sink, s);
  return 2.0 * 8 * 12 * static_cast<double>(kInner) * static_cast<double>(iterations);
}

__attribute__((target("avx512f"))) double avx512Loop(long iterations, float *sink) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i)
    a[i] = _mm512_set1_ps(1.0f + 0.01f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (long it = 0; it < iterations; ++it)
    for (long j = 0; j < kInner; ++j) {
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i)
    s = _mm512_add_ps(s, a[i]);
  _mm512_storeu_ps(sink, s);
  return 2.0 * 16 * 16 * static_cast<double>(kInner) * static_cast<double>(iterations);
}

using Loop = double (*)(long, float *);

/// GFLOP/s of one thread running `loop` for about `seconds`; best of a few repeats.
double timeLoop(Loop loop, double seconds) {
  alignas(64) float sink[16];
  long iters = 1;
  for (;;) { // calibrate: grow until one call takes >= 20 ms
    auto t0 = std::chrono::steady_clock::now();
    loop(iters, sink);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 0.02) break;
    iters *= 2;
  }
  double best = 0;
  auto start = std::chrono::steady_clock::now();
  do {
    auto t0 = std::chrono::steady_clock::now();
    double flops = loop(iters, sink);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / s * 1e-9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
           seconds);
  if (sink[0] != sink[0]) std::fprintf(stderr, "nan\n"); // keeps the results live
  return best;
}

} // namespace

int main(int argc, char **argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  double seconds = 1.0;
  bool json = false;
  std::string isa;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--isa" && i + 1 < argc) {
      isa = argv[++i];
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--isa avx2|avx512] [--json]\n",
                   argv[0]);
      return 2;
    }
  }
  __builtin_cpu_init();
  bool has512 = __builtin_cpu_supports("avx512f");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa.empty()) isa = has512 ? "avx512" : "avx2";
  if ((isa == "avx512" && !has512) || (isa == "avx2" && !has2) ||
      (isa != "avx2" && isa != "avx512")) {
    std::fprintf(stderr, "--isa %s: this CPU does not have it (avx2+fma: %d, avx512f: %d)\n",
                 isa.c_str(), has2, has512);
    return 1;
  }
  if (threads < 1) threads = 1;
  Loop loop = isa == "avx512" ? avx512Loop : avx2Loop;
  double perCore = timeLoop(loop, seconds);
  std::vector<double> each(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { each[t] = timeLoop(loop, seconds); });
  for (std::thread &t : pool)
    t.join();
  double total = 0;
  for (double g : each)
    total += g;
  if (json) {
    std::printf("{\"isa\": \"%s\", \"per_core_gflops\": %.2f, \"threads\": %d, "
                "\"all_threads_gflops\": %.2f}\n",
                isa.c_str(), perCore, threads, total);
  } else {
    std::printf("fp32 FMA peak (%s): %.1f GFLOP/s per core; %.1f GFLOP/s on %d threads\n",
                isa.c_str(), perCore, total, threads);
  }
  return 0;
}
