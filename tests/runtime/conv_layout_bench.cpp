// Times the conv shim's two layout strategies on ResNet-50-like convs (not a test; the
// numbers are recorded in src/runtime/shim_conv.cpp). Usage: kiln_runtime_conv_bench.
#include "shim_conv.h"
#include "test_util.h"

#include <kiln/runtime.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

using kiln::rt::ConvLayout;

double bestMs(kiln::rt::Runner &r, ConvLayout layout, int64_t c, int64_t o, int64_t k, int64_t hw,
              int64_t site) {
  std::mt19937 rng(1);
  std::vector<float> x = kiln::test::randomVector(rng, c * hw * hw),
                     w = kiln::test::randomVector(rng, o * c * k * k),
                     b = kiln::test::randomVector(rng, o), y(o * hw * hw);
  r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
  int64_t xd[4] = {1, c, hw, hw}, wd[4] = {o, c, k, k}, yd[4] = {1, o, hw, hw};
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  p.post_op = KILN_POST_RELU;
  for (int i = 0; i < 2; ++i) {
    p.strides[i] = p.dilations[i] = 1;
    p.pads_begin[i] = p.pads_end[i] = k / 2;
  }
  double best = 1e30;
  for (int i = 0; i < 60; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    int st = kiln::rt::convForward(r, site, x.data(), xd, w.data(), wd, b.data(), nullptr, y.data(),
                                   yd, p, layout);
    auto t1 = std::chrono::steady_clock::now();
    if (st) {
      std::printf("error: %s\n", kiln_rt_last_error());
      return -1;
    }
    if (i >= 10) best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

} // namespace

int main() {
  omp_set_num_threads(2);
  kiln::rt::Runner r;
  struct Shape {
    const char *name;
    int64_t c, o, k;
  } shapes[] = {{"3x3 64->64 56x56", 64, 64, 3}, {"1x1 256->64 56x56", 256, 64, 1}};
  int64_t site = 0;
  for (const Shape &s : shapes) {
    double flops = 2.0 * s.c * s.o * s.k * s.k * 56 * 56;
    double plain = bestMs(r, ConvLayout::Plain, s.c, s.o, s.k, 56, site++);
    double blocked = bestMs(r, ConvLayout::Blocked, s.c, s.o, s.k, 56, site++);
    std::printf("%-20s plain nchw %.3f ms (%.0f GFLOP/s)   any+reorders %.3f ms (%.0f GFLOP/s)\n",
                s.name, plain, flops / plain / 1e6, blocked, flops / blocked / 1e6);
  }
  return 0;
}
