// One of kiln's own conv routes against what the conv shim runs without it, in one process:
// the two alternate call by call on the same inputs (the machines this runs on are shared,
// and same-process alternation is what survives their load), each timed over --reps calls
// and reported as the median and fastest call, direct-method GFLOP/s, and the ratio of
// medians (route / without).
//
//   build/release/bench/conv/kiln_conv_route_bench --route direct|patch [--threads 1,2]
//       [--reps 40] [--shapes NAME,...] [--force 1]
//
// --force 1 runs the route on every shape its kernel can take, past the rule (which is what
// it measures on a CPU the rule does not cover yet, such as AVX-512 ones).
// direct: conv_direct.h (stems of few input channels) against oneDNN 2.6's conv.
// patch:  conv_patch_gemm.cpp (KxK convs as one GEMM over their patches) against oneDNN's
//         direct conv or, where the shape takes it, kiln's Winograd.
// Shapes are the convs of the bench models these routes take (channels-last, batch 1, bias,
// ReLU, weights a constant as in a model); the output's rel. L2 to the other path is printed.
#include "conv_direct.h"
#include "shim_conv.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Shape {
  const char *name;
  int64_t c, hw, o, k, stride, pad;
  bool residual;
};

const Shape kShapes[] = {
    {"mobilenetv2-stem", 3, 224, 32, 3, 2, 1, false},
    {"resnet-stem", 3, 224, 64, 7, 2, 3, false},
    {"resnet18-layer2.0.conv1", 64, 56, 128, 3, 2, 1, false},
    {"resnet18-layer3.0.conv1", 128, 28, 256, 3, 2, 1, false},
    {"resnet18-layer4.0.conv1", 256, 14, 512, 3, 2, 1, false},
    {"resnet-layer4-3x3", 512, 7, 512, 3, 1, 1, false},
    {"resnet-layer4-3x3+res", 512, 7, 512, 3, 1, 1, true},
    {"resnet50-layer2.0.conv2", 128, 56, 128, 3, 2, 1, false},
    {"resnet50-layer3.0.conv2", 256, 28, 256, 3, 2, 1, false},
    {"vit-b16-patches", 3, 224, 768, 16, 16, 0, false},
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool forceRoute = false;

void setRoute(const std::string &route, int on) {
  if (route == "direct")
    kiln::rt::forceKilnDirectConv(on ? (forceRoute ? 1 : -1) : 0);
  else
    kiln::rt::forcePatchGemmRoute(on ? (forceRoute ? 2 : 1) : 0);
}

void run(const Shape &s, const std::string &route, int threads, int reps) {
  const int64_t oh = (s.hw + 2 * s.pad - s.k) / s.stride + 1;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> x(s.hw * s.hw * s.c), w(s.o * s.c * s.k * s.k), b(s.o), res(oh * oh * s.o);
  for (auto *v : {&x, &w, &b, &res})
    for (float &f : *v)
      f = dist(rng);
  std::vector<float> y[2] = {std::vector<float>(res.size()), std::vector<float>(res.size())};
  kiln::rt::Runner r;
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  p.post_op = KILN_POST_RELU;
  for (int i = 0; i < 2; ++i) {
    p.strides[i] = s.stride;
    p.dilations[i] = 1;
    p.pads_begin[i] = p.pads_end[i] = s.pad;
  }
  const int64_t xd[] = {1, s.c, s.hw, s.hw}, wd[] = {s.o, s.c, s.k, s.k}, yd[] = {1, s.o, oh, oh};
  setRoute(route, 1);
  const bool taken =
      route == "direct"
          ? kiln::rt::directConvWanted(xd, wd, yd, s.residual ? res.data() : nullptr, p)
          : kiln::rt::patchGemmWanted(wd, yd, p, s.residual ? res.data() : nullptr, y[0].data());
  std::vector<double> ms[2];
  omp_set_num_threads(threads);
  for (int rep = -3; rep < reps; ++rep)
    for (int on = 1; on >= 0; --on) {
      setRoute(route, on);
      const auto t0 = std::chrono::steady_clock::now();
      const int st = kiln::rt::convForward(r, 1, x.data(), xd, w.data(), wd, b.data(),
                                           s.residual ? res.data() : nullptr, y[on].data(), yd, p,
                                           kiln::rt::ConvLayout::ChannelsLast);
      const double t =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (st != KILN_OK) {
        std::printf("%s: conv failed: %s\n", s.name, kiln_rt_last_error());
        return;
      }
      if (rep >= 0) ms[on].push_back(t);
    }
  setRoute(route, 1);
  double err = 0, norm = 0;
  for (size_t i = 0; i < y[0].size(); ++i) {
    err += (y[1][i] - y[0][i]) * double(y[1][i] - y[0][i]);
    norm += double(y[0][i]) * y[0][i];
  }
  const double gflop = 2.0 * oh * oh * s.o * s.c * s.k * s.k * 1e-9;
  const double m1 = median(ms[1]), m0 = median(ms[0]);
  std::printf("%-26s %d thr  route %s  %7.3f ms (best %7.3f, %6.1f GFLOP/s)  without %7.3f ms "
              "(best %7.3f, %6.1f)  route/without %.3f  rel L2 %.1e\n",
              s.name, threads, taken ? "on " : "OFF", m1,
              *std::min_element(ms[1].begin(), ms[1].end()), gflop / m1 * 1e3, m0,
              *std::min_element(ms[0].begin(), ms[0].end()), gflop / m0 * 1e3, m1 / m0,
              std::sqrt(err / std::max(norm, 1e-30)));
}

} // namespace

int main(int argc, char **argv) {
  std::string route = "patch", shapes;
  std::vector<int> threads{1, 2};
  int reps = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--route")
      route = v;
    else if (a == "--reps")
      reps = std::max(1, std::stoi(v));
    else if (a == "--shapes")
      shapes = "," + v + ",";
    else if (a == "--force")
      forceRoute = v == "1";
    else if (a == "--threads") {
      threads.clear();
      std::stringstream ss(v);
      for (std::string t; std::getline(ss, t, ',');)
        threads.push_back(std::stoi(t));
    } else {
      std::fprintf(stderr, "unknown argument %s (see the file's header)\n", a.c_str());
      return 2;
    }
  }
  if (route != "direct" && route != "patch") {
    std::fprintf(stderr, "--route must be direct or patch\n");
    return 2;
  }
  for (int t : threads)
    for (const Shape &s : kShapes)
      if (shapes.empty() || shapes.find("," + std::string(s.name) + ",") != std::string::npos)
        run(s, route, t, reps);
  return 0;
}
