// Times MobileNetV2's conv shapes three ways, to choose the conv path per shape (numbers in
// docs/perf.md): oneDNN 2.6 through kiln's conv shim exactly as models call it (NHWC
// activations, cached weights, bias + clip fused), XNNPACK (Debian's 2022 snapshot,
// NHWC, packed weights, bias + clip fused, pthreadpool threads) and kiln's own depthwise
// kernel (dwconv.h) where it applies.
// Usage: kiln_conv_bench [threads] [reps] [avx2]   (avx2: kiln's AVX2 kernel; cap oneDNN
// with ONEDNN_MAX_CPU_ISA=AVX2 in the same run to time an AVX2 machine on an AVX-512 one)
#include "dwconv.h"
#include "shim_conv.h"
#include "shim_dwconv.h"

#include <kiln/runtime.h>

#include <omp.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

struct Shape {
  int64_t c, o, k, stride, hw; // in channels, out channels, kernel, stride, input H=W
  bool depthwise;
};

using Clock = std::chrono::steady_clock;

template <class F> double bestMs(int reps, F &&f) {
  double best = 1e30;
  for (int i = 0; i < reps + 5; ++i) {
    auto t0 = Clock::now();
    f();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (i >= 5) best = std::min(best, ms);
  }
  return best;
}

} // namespace

int main(int argc, char **argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  int reps = argc > 2 ? std::atoi(argv[2]) : 50;
  if (argc > 3 && std::string(argv[3]) == "avx2" && !kiln::rt::forceDwIsa(kiln::rt::DwIsa::Avx2)) {
    std::fprintf(stderr, "this CPU has no AVX2\n");
    return 1;
  }
  omp_set_num_threads(threads);
  if (xnn_initialize(nullptr) != xnn_status_success) {
    std::fprintf(stderr, "xnn_initialize failed\n");
    return 1;
  }
  pthreadpool_t pool = threads > 1 ? pthreadpool_create(threads) : nullptr;
  kiln::rt::Runner runner;
  kiln::rt::forceKilnDepthwise(0); // the oneDNN column is oneDNN
  const Shape shapes[] = {
      {3, 32, 3, 2, 224, false},  {32, 32, 3, 1, 112, true},  {32, 16, 1, 1, 112, false},
      {16, 96, 1, 1, 112, false}, {96, 96, 3, 2, 112, true},  {96, 24, 1, 1, 56, false},
      {24, 144, 1, 1, 56, false}, {144, 144, 3, 1, 56, true}, {144, 24, 1, 1, 56, false},
      {144, 144, 3, 2, 56, true}, {144, 32, 1, 1, 28, false}, {32, 192, 1, 1, 28, false},
      {192, 192, 3, 1, 28, true}, {192, 32, 1, 1, 28, false}, {192, 192, 3, 2, 28, true},
      {192, 64, 1, 1, 14, false}, {64, 384, 1, 1, 14, false}, {384, 384, 3, 1, 14, true},
      {384, 64, 1, 1, 14, false}, {384, 96, 1, 1, 14, false}, {96, 576, 1, 1, 14, false},
      {576, 576, 3, 1, 14, true}, {576, 96, 1, 1, 14, false}, {576, 576, 3, 2, 14, true},
      {576, 160, 1, 1, 7, false}, {160, 960, 1, 1, 7, false}, {960, 960, 3, 1, 7, true},
      {960, 160, 1, 1, 7, false}, {960, 320, 1, 1, 7, false}, {320, 1280, 1, 1, 7, false},
  };
  std::printf("threads %d, best of %d; ms per call\n", threads, reps);
  std::printf("%-28s %9s %9s %9s %7s %7s\n", "shape", "oneDNN", "XNNPACK", "kiln-dw", "x/d", "k/d");
  double sum[3] = {0, 0, 0};
  int64_t site = 0;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Shape &s : shapes) {
    int64_t pad = s.k / 2, oh = (s.hw + 2 * pad - s.k) / s.stride + 1;
    int64_t g = s.depthwise ? s.c : 1, cPerG = s.c / g;
    std::vector<float> x(s.c * s.hw * s.hw), w(s.o * cPerG * s.k * s.k), b(s.o), y(s.o * oh * oh);
    for (float &v : x)
      v = dist(rng);
    for (float &v : w)
      v = dist(rng);
    for (float &v : b)
      v = dist(rng);
    runner.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
    int64_t xd[4] = {1, s.c, s.hw, s.hw}, wd[4] = {s.o, cPerG, s.k, s.k}, yd[4] = {1, s.o, oh, oh};
    kiln_conv_params_v1 p{};
    p.spatial_rank = 2;
    p.groups = g;
    p.post_op = KILN_POST_CLIP;
    p.clip_min = 0.f;
    p.clip_max = 6.f;
    for (int i = 0; i < 2; ++i) {
      p.strides[i] = s.stride;
      p.dilations[i] = 1;
      p.pads_begin[i] = p.pads_end[i] = pad;
    }
    ++site;
    double dnnlMs = bestMs(reps, [&] {
      if (kiln::rt::convForward(runner, site, x.data(), xd, w.data(), wd, b.data(), nullptr,
                                y.data(), yd, p, kiln::rt::ConvLayout::ChannelsLast))
        std::fprintf(stderr, "oneDNN: %s\n", kiln_rt_last_error());
    });

    // XNNPACK wants weights [O, KH, KW, C/g] (dense) or [1, KH, KW, C] (depthwise flag).
    std::vector<float> wx(w.size());
    for (int64_t o = 0; o < s.o; ++o)
      for (int64_t ci = 0; ci < cPerG; ++ci)
        for (int64_t kk = 0; kk < s.k * s.k; ++kk) {
          float v = w[(o * cPerG + ci) * s.k * s.k + kk];
          if (s.depthwise)
            wx[kk * s.c + o] = v;
          else
            wx[(o * s.k * s.k + kk) * cPerG + ci] = v;
        }
    xnn_operator_t op = nullptr;
    xnn_status st = xnn_create_convolution2d_nhwc_f32(
        pad, pad, pad, pad, s.k, s.k, s.stride, s.stride, 1, 1, g, cPerG, s.o / g, s.c, s.o,
        wx.data(), b.data(), 0.f, 6.f, s.depthwise ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0, &op);
    if (st == xnn_status_success)
      st = xnn_setup_convolution2d_nhwc_f32(op, 1, s.hw, s.hw, x.data(), y.data(), pool);
    double xnnMs = -1;
    if (st == xnn_status_success)
      xnnMs = bestMs(reps, [&] { xnn_run_operator(op, pool); });
    else
      std::fprintf(stderr, "XNNPACK: status %d\n", static_cast<int>(st));
    xnn_delete_operator(op);

    double dwMs = -1;
    if (s.depthwise) {
      kiln::rt::DwConvParams d{};
      d.n = 1;
      d.h = d.w = s.hw;
      d.c = s.c;
      d.oh = d.ow = oh;
      d.stride = s.stride;
      d.padTop = d.padLeft = pad;
      d.clipMin = 0.f;
      d.clipMax = 6.f;
      std::vector<float> packed(9 * s.c);
      kiln::rt::packDwWeights(w.data(), s.c, packed.data());
      dwMs = bestMs(
          reps, [&] { kiln::rt::dwConv3x3Nhwc(d, x.data(), packed.data(), b.data(), y.data()); });
    }
    char name[64];
    std::snprintf(name, sizeof name, "%s%lldx%lld %lld->%lld s%lld %lld", s.depthwise ? "dw" : "",
                  (long long)s.k, (long long)s.k, (long long)s.c, (long long)s.o,
                  (long long)s.stride, (long long)s.hw);
    std::printf("%-28s %9.4f %9.4f %9.4f %7.2f %7.2f\n", name, dnnlMs, xnnMs, dwMs, xnnMs / dnnlMs,
                dwMs > 0 ? dwMs / dnnlMs : 0.0);
    sum[0] += dnnlMs;
    sum[1] += xnnMs;
    sum[2] += dwMs > 0 ? dwMs : std::min(dnnlMs, xnnMs);
  }
  std::printf("%-28s %9.3f %9.3f %9.3f\n", "sum (kiln-dw: +best other)", sum[0], sum[1], sum[2]);
  if (pool) pthreadpool_destroy(pool);
  return 0;
}
