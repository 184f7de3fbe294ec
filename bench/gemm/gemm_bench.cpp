// GFLOP/s of oneDNN 2.6's f32 matmul configured as kiln's matmul shim runs a weight GEMM
// (B constant, reordered once into the layout oneDNN picks, bias, optional GELU post-op),
// against the alternatives considered for transformer shapes (docs/perf.md, "GEMM ceiling"):
//
//   whole  one M x N primitive
//   huge   the same, its packed weights in libkiln_rt's weight buffers (weight_memory.h:
//          2 MiB-aligned, MADV_HUGEPAGE): fewer TLB misses while B streams in
//   split  N / --split primitives of M x split writing column blocks of the same C (what a
//          Q/K/V fusion undoes, or a wide GEMM cut into narrower ones)
//   cols   at T > 1 threads: T primitives of N / T columns, one per thread, each running
//          single-threaded inside one parallel region (oneDNN does not nest), so each
//          thread streams only its share of B and no GEMM is split below a thread
//   xnn    XNNPACK's fully-connected f32 operator (only when built with XNNPACK)
//   own    the GEMM written for kiln (own_gemm.h; AVX-512, or AVX2 where the CPU or
//          ONEDNN_MAX_CPU_ISA allows no more), its packed copies of B in the same weight
//          buffers as `huge`
//   rt     the runtime's AVX2 GEMM (src/runtime/gemm.h), which the matmul shims run where
//          oneDNN is AVX2 (any CPU with AVX2; B packed into 16-column panels)
//   rt512  the runtime's AVX-512 GEMM on the same panels, which the matmul shims run where
//          AVX-512 is allowed (CPUs with AVX-512F); its work items claimed (work_claim.h)
//   rt512s at T > 1 threads: the same with its items statically split (KILN_GEMM_STEAL=0)
//   str    the runtime's Strassen route (gemm_strassen.h) where it takes the shape, its
//          GFLOP/s from the direct method's FLOPs (so above the peak where it pays)
//
//   build/release/bench/gemm/kiln_gemm_bench [--shapes M,N,K;...] [--split 768] [--gelu]
//       [--threads 1,2] [--reps 40] [--copies 8] [--peak GFLOPS_PER_CORE] [--rewrite-a]
//
// The variants alternate call by call. --copies rotates through that many packed copies of
// B, so B comes from memory as in a model (whose weights do not stay in cache between
// layers). Reported per variant: GFLOP/s of the fastest call and of the median, from
// wall time and, at 1 thread, from the thread's CPU time (which preemption by other
// processes on a shared machine does not inflate); --peak adds the fastest call's share of
// threads x that per-core peak (CPU time at 1 thread, wall time otherwise).
#include "gemm.h"
#include "gemm_strassen.h"
#include "gemv.h"
#include "isa_cap.h"
#include "own_gemm.h"
#include "rt_gemm_params.h"
#include "weight_memory.h"

#include <dnnl.hpp>
#include <omp.h>
#ifdef KILN_GEMM_BENCH_XNNPACK
#include <xnnpack.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using dnnl::memory;

struct Shape {
  int64_t m, n, k;
};

struct Options {
  std::vector<Shape> shapes{{128, 768, 768},   {128, 2304, 768}, {128, 3072, 768},
                            {128, 768, 3072},  {1024, 768, 768}, {1024, 3072, 768},
                            {1024, 768, 3072}, {1024, 2304, 768}};
  std::vector<int> threads{1};
  int64_t split = 768;
  bool gelu = false;
  int reps = 40;
  int copies = 8;
  double peak = 0;
  bool rewriteA = false;
};

double seconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::vector<std::string> splitOn(const std::string &s, char sep) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    size_t end = s.find(sep, at);
    if (end == std::string::npos) end = s.size();
    if (end > at) out.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

std::vector<int64_t> parseInts(const std::string &s, char sep) {
  std::vector<int64_t> out;
  for (const std::string &part : splitOn(s, sep))
    out.push_back(std::atoll(part.c_str()));
  return out;
}

bool parseArgs(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool hasValue = i + 1 < argc;
    if (a == "--gelu") {
      o.gelu = true;
    } else if (a == "--shapes" && hasValue) {
      o.shapes.clear();
      for (const std::string &part : splitOn(argv[++i], ';')) {
        std::vector<int64_t> v = parseInts(part, ',');
        if (v.size() != 3 || v[0] <= 0 || v[1] <= 0 || v[2] <= 0) {
          std::fprintf(stderr, "--shapes: '%s' is not M,N,K with positive sizes\n", part.c_str());
          return false;
        }
        o.shapes.push_back({v[0], v[1], v[2]});
      }
    } else if (a == "--threads" && hasValue) {
      o.threads.clear();
      for (int64_t t : parseInts(argv[++i], ','))
        o.threads.push_back(static_cast<int>(t));
    } else if (a == "--split" && hasValue) {
      o.split = std::atoll(argv[++i]);
    } else if (a == "--reps" && hasValue) {
      o.reps = std::atoi(argv[++i]);
    } else if (a == "--copies" && hasValue) {
      o.copies = std::atoi(argv[++i]);
    } else if (a == "--rewrite-a") {
      o.rewriteA = true;
    } else if (a == "--peak" && hasValue) {
      o.peak = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "unknown or incomplete argument '%s' (see the file's header)\n",
                   a.c_str());
      return false;
    }
  }
  if (o.reps < 1 || o.copies < 1 || o.split < 1 || o.threads.empty()) {
    std::fprintf(stderr, "--reps, --copies, --split and --threads must be positive\n");
    return false;
  }
  return true;
}

// One oneDNN matmul over columns [n0, n0 + n) of C (row stride ldc), with `copies` packed
// copies of the matching columns of B (in libkiln_rt's weight buffers when weightBuffers).
struct DnnlGemm {
  dnnl::matmul prim;
  std::vector<memory> weights;
  std::vector<std::shared_ptr<void>> buffers;
  memory a, bias, c;

  DnnlGemm(dnnl::engine &eng, dnnl::stream &s, const Shape &sh, int64_t n0, int64_t n, float *A,
           float *B, float *biasData, float *C, bool gelu, int copies, bool weightBuffers = false) {
    const auto f32 = memory::data_type::f32;
    memory::desc aMd({sh.m, sh.k}, f32, memory::format_tag::ab);
    memory::desc bAny({sh.k, n}, f32, memory::format_tag::any);
    memory::desc bPlain({sh.k, n}, f32, memory::dims{sh.n, 1});
    memory::desc biasMd({1, n}, f32, memory::format_tag::ab);
    memory::desc cMd({sh.m, n}, f32, memory::dims{sh.n, 1});
    dnnl::post_ops ops;
    if (gelu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aMd, bAny, biasMd, cMd), attr, eng);
    memory plain(bPlain, eng, B + n0);
    for (int i = 0; i < copies; ++i) {
      memory w;
      if (weightBuffers) {
        buffers.emplace_back();
        w = kiln::rt::weightMemory(pd.weights_desc(), eng, buffers.back());
      } else {
        w = memory(pd.weights_desc(), eng);
      }
      dnnl::reorder(plain, w).execute(s, plain, w);
      weights.push_back(w);
    }
    s.wait();
    prim = dnnl::matmul(pd);
    a = memory(aMd, eng, A);
    bias = memory(biasMd, eng, biasData + n0);
    c = memory(cMd, eng, C + n0);
  }

  void run(dnnl::stream &s, int copy) {
    prim.execute(s, {{DNNL_ARG_SRC, a},
                     {DNNL_ARG_WEIGHTS, weights[copy]},
                     {DNNL_ARG_BIAS, bias},
                     {DNNL_ARG_DST, c}});
  }
};

struct Timings {
  std::vector<double> wall, cpu;
};

double relL2(const std::vector<float> &x, const std::vector<float> &ref) {
  double e = 0, r = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double d = static_cast<double>(x[i]) - ref[i];
    e += d * d;
    r += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(e / std::max(r, 1e-300));
}

void report(const char *name, Timings &t, double gflop, int threads, double peak) {
  std::sort(t.wall.begin(), t.wall.end());
  std::sort(t.cpu.begin(), t.cpu.end());
  size_t mid = t.wall.size() / 2;
  std::printf("  %-6s wall: best %6.1f median %6.1f GFLOP/s", name, gflop / t.wall[0],
              gflop / t.wall[mid]);
  if (threads == 1)
    std::printf(" | CPU time: best %6.1f median %6.1f", gflop / t.cpu[0], gflop / t.cpu[mid]);
  // At 1 thread the CPU time is what the call ran; at 2 only the wall time exists.
  double best = threads == 1 ? t.cpu[0] : t.wall[0];
  if (peak > 0) std::printf(" | best %.0f%% of peak", 100.0 * gflop / best / (peak * threads));
  std::printf("\n");
}

void runShape(const Options &o, const Shape &sh, int threads) {
  omp_set_num_threads(threads);
  std::vector<float> A(sh.m * sh.k), B(sh.k * sh.n), bias(sh.n), C(sh.m * sh.n), ref(sh.m * sh.n);
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (std::vector<float> *v : {&A, &B, &bias})
    for (float &x : *v)
      x = dist(gen);

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  DnnlGemm whole(eng, s, sh, 0, sh.n, A.data(), B.data(), bias.data(), C.data(), o.gelu, o.copies);
  DnnlGemm huge(eng, s, sh, 0, sh.n, A.data(), B.data(), bias.data(), C.data(), o.gelu, o.copies,
                true);
  std::vector<DnnlGemm> parts, cols, rows;
  std::vector<dnnl::stream> colStreams;
  // Each created as for one thread (oneDNN picks its blocking for the thread count it sees).
  omp_set_num_threads(1);
  if (threads > 1 && sh.n % (16 * threads) == 0)
    for (int t = 0; t < threads; ++t) {
      colStreams.emplace_back(eng);
      const int64_t w = sh.n / threads;
      cols.emplace_back(eng, s, sh, t * w, w, A.data(), B.data(), bias.data(), C.data(), o.gelu,
                        o.copies, true);
    }
  // rows: T single-threaded GEMMs of M / T rows each, thread t on the rows it wrote (with
  // --rewrite-a); they share one set of packed B copies when oneDNN packs B alike for both.
  if (threads > 1 && sh.m % threads == 0) {
    const Shape part{sh.m / threads, sh.n, sh.k};
    while (colStreams.size() < static_cast<size_t>(threads))
      colStreams.emplace_back(eng);
    for (int t = 0; t < threads; ++t) {
      rows.emplace_back(eng, s, part, 0, sh.n, A.data() + t * part.m * sh.k, B.data(), bias.data(),
                        C.data() + t * part.m * sh.n, o.gelu, t == 0 ? o.copies : 1, true);
      if (t > 0 && rows[t].weights[0].get_desc() == rows[0].weights[0].get_desc())
        rows[t].weights = rows[0].weights;
    }
  }
  omp_set_num_threads(threads);
  const bool splits = o.split < sh.n && sh.n % o.split == 0;
  if (splits)
    for (int64_t n0 = 0; n0 < sh.n; n0 += o.split)
      parts.emplace_back(eng, s, sh, n0, o.split, A.data(), B.data(), bias.data(), C.data(), o.gelu,
                         o.copies);
#ifdef KILN_GEMM_BENCH_XNNPACK
  // XNNPACK wants the weights as [N][K] and packs them itself at creation; no GELU.
  xnn_operator_t fc = nullptr;
  if (!o.gelu && threads == 1 && xnn_initialize(nullptr) == xnn_status_success) {
    std::vector<float> bt(sh.k * sh.n);
    for (int64_t k = 0; k < sh.k; ++k)
      for (int64_t n = 0; n < sh.n; ++n)
        bt[n * sh.k + k] = B[k * sh.n + n];
    const float inf = std::numeric_limits<float>::infinity();
    if (xnn_create_fully_connected_nc_f32(sh.k, sh.n, sh.k, sh.n, bt.data(), bias.data(), -inf, inf,
                                          0, &fc) != xnn_status_success ||
        xnn_setup_fully_connected_nc_f32(fc, sh.m, A.data(), C.data(), nullptr) !=
            xnn_status_success)
      fc = nullptr;
  }
#endif

  std::vector<std::shared_ptr<void>> ownCopies;
  namespace gemm = kiln::bench::gemm;
  gemm::Epilogue ep;
  ep.bias = bias.data();
  ep.post = o.gelu ? gemm::Post::GeluErf : gemm::Post::None;
  if (gemm::available())
    for (int i = 0; i < o.copies; ++i) {
      ownCopies.push_back(kiln::rt::allocateWeightBuffer(
          sizeof(float) * static_cast<size_t>(gemm::packedFloats(sh.k, sh.n))));
      gemm::packB(B.data(), sh.n, false, sh.k, sh.n, static_cast<float *>(ownCopies.back().get()));
    }

  std::vector<std::shared_ptr<void>> rtCopies;
  const kiln::rt::GemmParams rtParams = kiln::bench::plainGemmParams(
      sh.m, sh.n, sh.k, bias.data(),
      o.gelu ? kiln::rt::GemmPost::GeluErf : kiln::rt::GemmPost::Clamp);
  if (kiln::rt::gemmAvx2Supported())
    for (int i = 0; i < o.copies; ++i) {
      rtCopies.push_back(
          kiln::rt::allocateWeightBuffer(sizeof(float) * kiln::rt::gemvPackedFloats(sh.n, sh.k)));
      kiln::rt::packGemvWeights(B.data(), sh.n, sh.k, sh.n, false,
                                static_cast<float *>(rtCopies.back().get()));
    }

  // The runtime's Strassen route (gemm_strassen.h), where it takes this shape.
  const bool strassen = kiln::rt::strassenFits(sh.m, sh.n, sh.k);
  std::vector<std::shared_ptr<void>> strCopies;
  for (int i = 0; strassen && i < o.copies; ++i) {
    strCopies.push_back(
        kiln::rt::allocateWeightBuffer(sizeof(float) * kiln::rt::strassenPackedFloats(sh.n, sh.k)));
    kiln::rt::packStrassenWeights(B.data(), sh.n, sh.k, sh.n, false,
                                  static_cast<float *>(strCopies.back().get()));
  }

  Timings tw, th, ts, tx, tk, tc, trw, trt, tr5, tr5s, tst;
  double hugeErr = 0, splitErr = 0, xnnErr = 0, kilnErr = 0, colsErr = 0, rowsErr = 0, rtErr = 0,
         rt512Err = 0, rt512sErr = 0, strErr = 0;
  // --rewrite-a: before each call the threads rewrite A by rows, as the kernel before a
  // GEMM in a model does, so A starts in the writers' caches rather than shared by all.
  auto rewriteA = [&] {
    if (!o.rewriteA) return;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < sh.m; ++i)
      for (int64_t j = 0; j < sh.k; ++j)
        A[i * sh.k + j] += 0.f * A[i * sh.k + j] + 1e-7f;
  };
  auto timeOne = [&](Timings &t, auto &&call) {
    rewriteA();
    double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
    call();
    s.wait();
    t.cpu.push_back(seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
    t.wall.push_back(seconds(CLOCK_MONOTONIC) - w0);
  };
  for (int r = -1; r < o.reps; ++r) { // r = -1: warm-up, not recorded
    int copy = (r + 1) % o.copies;
    Timings sink;
    timeOne(r < 0 ? sink : tw, [&] { whole.run(s, copy); });
    if (r == o.reps - 1) ref = C;
    timeOne(r < 0 ? sink : th, [&] { huge.run(s, copy); });
    if (r == o.reps - 1) hugeErr = relL2(C, ref);
    if (splits) {
      timeOne(r < 0 ? sink : ts, [&] {
        for (DnnlGemm &p : parts)
          p.run(s, copy);
      });
      if (r == o.reps - 1) splitErr = relL2(C, ref);
    }
    if (!cols.empty()) {
      timeOne(r < 0 ? sink : tc, [&] {
#pragma omp parallel num_threads(threads)
        {
          const int t = omp_get_thread_num();
          cols[t].run(colStreams[t], copy);
          colStreams[t].wait();
        }
      });
      if (r == o.reps - 1) colsErr = relL2(C, ref);
    }
    if (!rows.empty()) {
      timeOne(r < 0 ? sink : trw, [&] {
#pragma omp parallel num_threads(threads)
        {
          const int t = omp_get_thread_num();
          const int c = rows[t].weights.size() > 1 ? copy : 0;
          rows[t].run(colStreams[t], c);
          colStreams[t].wait();
        }
      });
      if (r == o.reps - 1) rowsErr = relL2(C, ref);
    }
    if (!ownCopies.empty()) {
      timeOne(r < 0 ? sink : tk, [&] {
        gemm::run(sh.m, sh.n, sh.k, A.data(), sh.k,
                  static_cast<const float *>(ownCopies[copy].get()), C.data(), sh.n, ep);
      });
      if (r == o.reps - 1) kilnErr = relL2(C, ref);
    }
    if (!rtCopies.empty()) {
      timeOne(r < 0 ? sink : trt, [&] {
        kiln::rt::gemmAvx2(rtParams, A.data(), static_cast<const float *>(rtCopies[copy].get()),
                           C.data());
      });
      if (r == o.reps - 1) rtErr = relL2(C, ref);
    }
    if (strassen) {
      timeOne(r < 0 ? sink : tst, [&] {
        kiln::rt::gemmStrassen(rtParams, A.data(),
                               static_cast<const float *>(strCopies[copy].get()), C.data());
      });
      if (r == o.reps - 1) strErr = relL2(C, ref);
    }
    if (!rtCopies.empty() && kiln::rt::cpuIsaBits() >= 512) {
      timeOne(r < 0 ? sink : tr5, [&] {
        kiln::rt::gemmAvx512(rtParams, A.data(), static_cast<const float *>(rtCopies[copy].get()),
                             C.data());
      });
      if (r == o.reps - 1) rt512Err = relL2(C, ref);
      if (threads > 1) { // the same with its items statically split, not claimed
        kiln::rt::setGemmClaimsItems(false);
        timeOne(r < 0 ? sink : tr5s, [&] {
          kiln::rt::gemmAvx512(rtParams, A.data(), static_cast<const float *>(rtCopies[copy].get()),
                               C.data());
        });
        kiln::rt::setGemmClaimsItems(true);
        if (r == o.reps - 1) rt512sErr = relL2(C, ref);
      }
    }
#ifdef KILN_GEMM_BENCH_XNNPACK
    if (fc) {
      timeOne(r < 0 ? sink : tx, [&] { xnn_run_operator(fc, nullptr); });
      if (r == o.reps - 1) xnnErr = relL2(C, ref);
    }
#endif
  }
  const double gflop = 2.0 * sh.m * sh.n * sh.k * 1e-9;
  std::printf("M %lld, N %lld, K %lld%s, %d thread(s), %d calls each:\n",
              static_cast<long long>(sh.m), static_cast<long long>(sh.n),
              static_cast<long long>(sh.k), o.gelu ? ", GELU" : "", threads, o.reps);
  report("whole", tw, gflop, threads, o.peak);
  report("huge", th, gflop, threads, o.peak);
  std::printf("         (weights on 2 MiB pages; rel. L2 to whole %.1e)\n", hugeErr);
  if (splits) {
    report("split", ts, gflop, threads, o.peak);
    std::printf("         (%lld GEMMs of N %lld; rel. L2 to whole %.1e)\n",
                static_cast<long long>(parts.size()), static_cast<long long>(o.split), splitErr);
  }
  if (!tc.wall.empty()) {
    report("cols", tc, gflop, threads, o.peak);
    std::printf("         (one single-threaded GEMM of N / %d per thread; rel. L2 to whole %.1e)\n",
                threads, colsErr);
  }
  if (!trw.wall.empty()) {
    report("rows", trw, gflop, threads, o.peak);
    std::printf("         (one single-threaded GEMM of M / %d per thread; rel. L2 to whole %.1e)\n",
                threads, rowsErr);
  }
  if (!tk.wall.empty()) {
    report("own", tk, gflop, threads, o.peak);
    std::printf("         (own GEMM, %s; rel. L2 to whole %.1e)\n", gemm::isaName(), kilnErr);
  }
  if (!trt.wall.empty()) {
    report("rt", trt, gflop, threads, o.peak);
    std::printf("         (the runtime's AVX2 GEMM; rel. L2 to whole %.1e)\n", rtErr);
  }
  if (!tst.wall.empty()) {
    report("str", tst, gflop, threads, o.peak);
    std::printf("         (the runtime's Strassen route, direct-method FLOPs; rel. L2 to whole "
                "%.1e)\n",
                strErr);
  }
  if (!tr5.wall.empty()) {
    report("rt512", tr5, gflop, threads, o.peak);
    std::printf("         (the runtime's AVX-512 GEMM; rel. L2 to whole %.1e)\n", rt512Err);
  }
  if (!tr5s.wall.empty()) {
    report("rt512s", tr5s, gflop, threads, o.peak);
    std::printf("         (rt512 with its items statically split; rel. L2 to whole %.1e)\n",
                rt512sErr);
  }
  if (!tx.wall.empty()) {
    report("xnn", tx, gflop, threads, o.peak);
    std::printf("         (XNNPACK fully connected; rel. L2 to whole %.1e)\n", xnnErr);
  }
#ifdef KILN_GEMM_BENCH_XNNPACK
  if (fc) xnn_delete_operator(fc);
#endif
}

} // namespace

int main(int argc, char **argv) {
  Options o;
  if (!parseArgs(argc, argv, o)) return 2;
  for (int threads : o.threads)
    for (const Shape &sh : o.shapes)
      runShape(o, sh, threads);
  return 0;
}
