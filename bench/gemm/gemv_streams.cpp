// How many panels (streams of B) a step of the runtime's GEMV kernel (src/runtime/gemv_kernel.h)
// should read, on this machine, with B coming from memory as a classifier's weights do.
//
//   build/release/bench/gemm/kiln_gemv_streams [--shapes K,N;...] [--threads 1,2] [--reps 48]
//
// (exit 77 on a CPU without AVX-512F)
//
// For each shape, row count m (1, 2, 4) and thread count it times the AVX-512 kernel with 1, 2,
// 3 and 4 panels a step (`rowsOf<Avx512, m, P>`, the template the runtime instantiates in
// gemv_avx512.cpp) through the runtime's gemvWith, which shares the panels among the threads
// as gemv() does (at most one thread per 8 panels), and prints the median GB/s of B read. B
// rotates through 16 packed copies on 2 MiB pages (the runtime's weight buffers), so each call
// streams it from memory. The variants alternate call by call.
#include "gemv_kernel.h"
#include "simd_avx512.h"
#include "weight_memory.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace {

using kiln::rt::GemvParams;
using kiln::rt::kGemvPanel;

double seconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Shape {
  int64_t k, n;
};

struct Options {
  std::vector<Shape> shapes{{1280, 1000}, {2048, 1000}, {768, 768}};
  std::vector<int> threads{1, 2};
  int reps = 48;
};

template <int MR, int P> kiln::rt::GemvKernel kernelOf() {
  return {"probe", &kiln::rt::gemv_kernel::rowsOf<kiln::rt::simd::Avx512, MR, P>};
}

void runShape(const Shape &sh, const Options &o) {
  constexpr int kCopies = 16;
  const int64_t panels = (sh.n + kGemvPanel - 1) / kGemvPanel;
  const size_t floats = static_cast<size_t>(panels * sh.k * kGemvPanel);
  std::vector<std::shared_ptr<void>> copies;
  for (int i = 0; i < kCopies; ++i) {
    copies.push_back(kiln::rt::allocateWeightBuffer(floats * sizeof(float)));
    float *p = static_cast<float *>(copies.back().get());
    for (size_t j = 0; j < floats; ++j)
      p[j] = static_cast<float>(j % 13) * 0.01f;
  }
  std::vector<float> a(4 * sh.k, 0.5f), c(4 * sh.n);
  std::printf("K %lld, N %lld: %.1f MB of B per call, %d copies\n", static_cast<long long>(sh.k),
              static_cast<long long>(sh.n), floats * 4 / 1e6, kCopies);
  const int rows[] = {1, 2, 4};
  const kiln::rt::GemvKernel byRows[3][4] = {
      {kernelOf<1, 1>(), kernelOf<1, 2>(), kernelOf<1, 3>(), kernelOf<1, 4>()},
      {kernelOf<2, 1>(), kernelOf<2, 2>(), kernelOf<2, 3>(), kernelOf<2, 4>()},
      {kernelOf<4, 1>(), kernelOf<4, 2>(), kernelOf<4, 3>(), kernelOf<4, 4>()}};
  for (int threads : o.threads) {
    omp_set_num_threads(threads);
    for (int r = 0; r < 3; ++r) {
      GemvParams g{rows[r], sh.n, sh.k,    sh.k,    sh.n,   sh.n,
                   1.f,     1.f,  nullptr, nullptr, -1e30f, 1e30f};
      std::vector<double> times[4];
      for (int rep = -1; rep < o.reps; ++rep) // rep -1: warm-up
        for (int p = 0; p < 4; ++p) {
          const float *b = static_cast<const float *>(copies[(rep + 1 + p) % kCopies].get());
          const double t0 = seconds();
          kiln::rt::gemvWith(byRows[r][p], g, a.data(), b, c.data());
          if (rep >= 0) times[p].push_back(seconds() - t0);
        }
      std::printf("  m %d, %d thread(s): median GB/s with 1 / 2 / 3 / 4 panels a step:", rows[r],
                  threads);
      for (auto &t : times) {
        std::sort(t.begin(), t.end());
        std::printf(" %6.1f", floats * 4 / t[t.size() / 2] / 1e9);
      }
      std::printf("\n");
    }
  }
}

std::vector<int64_t> parseInts(const std::string &s) {
  std::vector<int64_t> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t end = s.find(',', at);
    out.push_back(std::atoll(s.substr(at, end - at).c_str()));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

bool parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--shapes") {
      o.shapes.clear();
      size_t at = 0;
      while (at < value.size()) {
        const size_t end = std::min(value.find(';', at), value.size());
        const std::vector<int64_t> v = parseInts(value.substr(at, end - at));
        if (v.size() != 2 || v[0] < 1 || v[1] < 1) return false;
        o.shapes.push_back({v[0], v[1]});
        at = end + 1;
      }
    } else if (flag == "--threads") {
      o.threads.clear();
      for (int64_t t : parseInts(value))
        o.threads.push_back(static_cast<int>(t));
    } else if (flag == "--reps") {
      o.reps = std::atoi(value.c_str());
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && o.reps >= 3 && !o.shapes.empty() && !o.threads.empty();
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) {
    std::fprintf(stderr, "usage: %s [--shapes K,N;...] [--threads 1,2] [--reps 48]\n", argv[0]);
    return 2;
  }
  if (!__builtin_cpu_supports("avx512f")) {
    std::fprintf(stderr, "this CPU has no AVX-512F; the probe times the AVX-512 kernel only\n");
    return 77;
  }
  for (const Shape &sh : o.shapes)
    runShape(sh, o);
  return 0;
}
