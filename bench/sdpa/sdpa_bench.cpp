// GFLOP/s of the fused attention shim (kiln_shim_sdpa_v2) alone, at a few transformer shapes
// and thread counts. FLOPs counted as 4*B*H*Sq*Skv*D (QK^T and P*V, the softmax not counted),
// so figures compare directly with the fp32 FMA peak of bench/peak/fma_peak.cpp.
//
//   build/release/bench/sdpa/kiln_sdpa_bench [--threads 1,2] [--mask none|pad|causal]
//       [--shapes B,H,S,D;B,H,S,D...] [--seconds S] [--peak GFLOPS_PER_CORE]
//       [--isa avx512|avx2|generic] [--layout plain|fused] [--cold]
//
// --layout fused reads Q, K and V in place from one [B, S, 3 H D] projection and writes
// [B, S, H D] (kiln_shim_sdpa_v3's layout, as a model with a fused Q/K/V GEMM calls it);
// plain is [B, H, S, D] each. --cold writes 64 MiB of other memory before each timed call, so
// Q/K/V come from memory or L3 as after a GEMM in a model, not from the caches.
//
// --isa forces one of the runtime's kernel sets (default: the best this CPU runs), which is
// why this bench links the runtime's objects rather than libkiln_rt.so.
//
// Each case: a warm-up call, then calls until --seconds have passed (at least 5), timed one by
// one. The median and the fastest call are reported, GFLOP/s from the fastest (on a shared,
// loaded machine the scheduler preempts long calls, which inflates the median), and the
// process CPU time per call (at 1 thread: the time the call really ran).
#include "sdpa_kernels.h"

#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

namespace {

struct Shape {
  int64_t B, H, S, D;
};

std::vector<int> parseInts(const std::string &s, char sep) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= s.size()) {
    size_t end = s.find(sep, at);
    if (end == std::string::npos) end = s.size();
    if (end > at) out.push_back(std::atoi(s.substr(at, end - at).c_str()));
    at = end + 1;
  }
  return out;
}

std::vector<Shape> parseShapes(const std::string &s) {
  std::vector<Shape> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t end = s.find(';', at);
    if (end == std::string::npos) end = s.size();
    std::vector<int> v = parseInts(s.substr(at, end - at), ',');
    if (v.size() != 4) {
      std::fprintf(stderr, "--shapes: '%s' is not B,H,S,D\n", s.substr(at, end - at).c_str());
      std::exit(2);
    }
    out.push_back({v[0], v[1], v[2], v[3]});
    at = end + 1;
  }
  return out;
}

struct Timing {
  double median, best; // wall seconds per call
  double cpu;          // process CPU seconds per call (all threads, spinning included)
};

double processCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Timing timeCase(kiln_shim_ctx *ctx, const Shape &sh, const std::string &maskKind, int threads,
                double seconds, bool fused, bool cold) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t n = sh.B * sh.H * sh.S * sh.D;
  std::vector<float> q(n), k(n), v(n), out(n), qkv(fused ? 3 * n : 0);
  for (auto *t : {&q, &k, &v, &qkv})
    for (float &x : *t)
      x = u(rng);
  // kiln_shim_sdpa_v3's layout: {offset, batch, head, row} strides of Q, K, V and out.
  const int64_t hd = sh.H * sh.D;
  const int64_t layout[16] = {0,      sh.S * 3 * hd, sh.D, 3 * hd, hd, sh.S * 3 * hd, sh.D, 3 * hd,
                              2 * hd, sh.S * 3 * hd, sh.D, 3 * hd, 0,  sh.S * hd,     sh.D, hd};
  std::vector<char> other(cold ? size_t(64) << 20 : 0);
  std::vector<float> mask;
  int64_t ms[4] = {0, 0, 0, 1};
  if (maskKind == "pad") { // HF padding mask [B,1,1,S]: the last eighth of the keys masked
    mask.assign(sh.B * sh.S, 0.f);
    for (int64_t b = 0; b < sh.B; ++b)
      for (int64_t j = sh.S - sh.S / 8; j < sh.S; ++j)
        mask[b * sh.S + j] = -10000.f;
    ms[0] = sh.S;
  } else if (maskKind == "causal") { // [S,S], -inf above the diagonal
    mask.assign(sh.S * sh.S, 0.f);
    for (int64_t i = 0; i < sh.S; ++i)
      for (int64_t j = i + 1; j < sh.S; ++j)
        mask[i * sh.S + j] = -INFINITY;
    ms[2] = sh.S;
  }
  const int64_t dims[6] = {sh.B, sh.H, sh.S, sh.S, sh.D, sh.D};
  omp_set_num_threads(threads);
  auto call = [&] {
    const float *m = mask.empty() ? nullptr : mask.data();
    const int64_t *mst = mask.empty() ? nullptr : ms;
    int st = fused ? kiln_shim_sdpa_v3(ctx, 0, qkv.data(), qkv.data(), qkv.data(), m, mst,
                                       out.data(), dims, nullptr, layout)
                   : kiln_shim_sdpa_v2(ctx, 0, q.data(), k.data(), v.data(), m, mst, out.data(),
                                       dims, nullptr);
    kiln_rt_runner_reset(ctx);
    if (st != KILN_OK) {
      std::fprintf(stderr, "kiln_shim_sdpa_v2 failed: %s\n", kiln_rt_last_error());
      std::exit(1);
    }
  };
  call();
  std::vector<double> ms_;
  const double cpu0 = processCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  while (ms_.size() < 5 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             seconds) {
    if (cold) std::memset(other.data(), static_cast<int>(ms_.size() & 0xff), other.size());
    auto t0 = std::chrono::steady_clock::now();
    call();
    ms_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double cpu = (processCpuSeconds() - cpu0) / ms_.size();
  std::sort(ms_.begin(), ms_.end());
  return {ms_[ms_.size() / 2], ms_.front(), cpu};
}

} // namespace

int main(int argc, char **argv) {
  std::string threadList = "1,2", maskKind = "none",
              shapes = "1,12,128,64;1,12,384,64;8,12,128,64;1,12,128,128;1,16,197,80";
  double seconds = 1.0, peak = 0.0;
  std::string isa = "auto", layoutKind = "plain";
  bool cold = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads")
      threadList = next();
    else if (a == "--mask")
      maskKind = next();
    else if (a == "--shapes")
      shapes = next();
    else if (a == "--seconds")
      seconds = std::atof(next().c_str());
    else if (a == "--peak")
      peak = std::atof(next().c_str());
    else if (a == "--isa")
      isa = next();
    else if (a == "--layout")
      layoutKind = next();
    else if (a == "--cold")
      cold = true;
    else {
      std::fprintf(stderr, "unknown argument '%s' (see the comment at the top of sdpa_bench.cpp)\n",
                   a.c_str());
      return 2;
    }
  }
  if (maskKind != "none" && maskKind != "pad" && maskKind != "causal") {
    std::fprintf(stderr, "--mask must be none, pad or causal, not '%s'\n", maskKind.c_str());
    return 2;
  }
  if (layoutKind != "plain" && layoutKind != "fused") {
    std::fprintf(stderr, "--layout must be plain or fused, not '%s'\n", layoutKind.c_str());
    return 2;
  }
  using kiln::rt::sdpa::Isa;
  const Isa want = isa == "avx512"    ? Isa::Avx512
                   : isa == "avx2"    ? Isa::Avx2
                   : isa == "generic" ? Isa::Generic
                                      : Isa::Auto;
  if (want == Isa::Auto && isa != "auto") {
    std::fprintf(stderr, "--isa must be avx512, avx2 or generic, not '%s'\n", isa.c_str());
    return 2;
  }
  if (!kiln::rt::sdpa::forceIsa(want)) {
    std::fprintf(stderr, "this CPU cannot run the %s kernels\n", isa.c_str());
    return 2;
  }
  kiln_shim_ctx *ctx = nullptr;
  if (kiln_rt_runner_create(&ctx) != KILN_OK) {
    std::fprintf(stderr, "kiln_rt_runner_create failed: %s\n", kiln_rt_last_error());
    return 1;
  }
  std::printf("| B | H | S | D | mask | threads | median ms | best ms | CPU ms | GFLOP/s (best) "
              "|%s\n",
              peak > 0 ? " % of peak |" : "");
  std::printf("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |%s\n",
              peak > 0 ? " ---: |" : "");
  for (const Shape &sh : parseShapes(shapes))
    for (int t : parseInts(threadList, ',')) {
      Timing tm = timeCase(ctx, sh, maskKind, t, seconds, layoutKind == "fused", cold);
      double gflops = 4.0 * sh.B * sh.H * sh.S * sh.S * sh.D / tm.best * 1e-9;
      std::printf("| %lld | %lld | %lld | %lld | %s | %d | %.3f | %.3f | %.3f | %.1f |",
                  (long long)sh.B, (long long)sh.H, (long long)sh.S, (long long)sh.D,
                  maskKind.c_str(), t, tm.median * 1e3, tm.best * 1e3, tm.cpu * 1e3, gflops);
      if (peak > 0) std::printf(" %.0f%% |", 100.0 * gflops / (peak * t));
      std::printf("\n");
      std::fflush(stdout);
    }
  kiln_rt_runner_destroy(ctx);
  return 0;
}
