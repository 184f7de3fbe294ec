// MobileNetV2's inverted-residual blocks (batch 1, 224x224 input) run two ways, in model
// order with every block's own buffers, so caches see what they see in the model:
//   convs   three kiln_shim_conv_v2 calls (1x1 expand, depthwise 3x3, 1x1 project + residual)
//   chain   one kiln_shim_conv_chain_v1 call, band by band (src/runtime/shim_conv_chain.cpp)
// Prints the median time per block and for all blocks, and the chain's rel. L2 difference
// from the convs.
//
//   build/release/bench/conv/kiln_chain_bench [--threads 1,2] [--reps 30] [--band-kb 384]
//       [--lane-rows 8]
// --band-kb: the band budget per thread; --lane-rows: the fewest output rows per thread that
// run as lanes (0: never); both default to the shim's own schedule.
#include "conv_chain.h"
#include "shim_conv.h"

#include <kiln/runtime.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Block {
  const char *name;
  int64_t hw, cin, ce, cout, stride; // ce == cin: no expansion
  bool residual;
};

// torchvision mobilenet_v2 at 224: features.1 .. features.17 (one of each repeated block).
const Block kBlocks[] = {
    {"features.1", 112, 32, 32, 16, 1, false},   {"features.2", 112, 16, 96, 24, 2, false},
    {"features.3", 56, 24, 144, 24, 1, true},    {"features.4", 56, 24, 144, 32, 2, false},
    {"features.5", 28, 32, 192, 32, 1, true},    {"features.7", 28, 32, 192, 64, 2, false},
    {"features.8", 14, 64, 384, 64, 1, true},    {"features.12", 14, 96, 576, 96, 1, true},
    {"features.14", 14, 96, 576, 160, 2, false}, {"features.15", 7, 160, 960, 160, 1, true},
    {"features.17", 7, 160, 960, 320, 1, false}};

kiln_conv_params_v1 convParams(int64_t groups, int64_t stride, int64_t pad, bool clip) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = groups;
  for (int i = 0; i < 2; ++i) {
    p.strides[i] = stride;
    p.dilations[i] = 1;
    p.pads_begin[i] = p.pads_end[i] = pad;
  }
  p.post_op = clip ? KILN_POST_CLIP : KILN_POST_NONE;
  p.clip_min = 0.f;
  p.clip_max = 6.f;
  return p;
}

struct Case {
  Block b;
  int count;
  int64_t oh;
  std::vector<float> x, w[3], bias[3], mid[2], yConvs, yChain;
  int64_t xDims[4], wDims[12], midDims[2][4], yDims[4];
  kiln_conv_chain_params_v1 p{};
};

void fill(std::vector<float> &v, size_t n, std::mt19937 &rng, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  v.resize(n);
  for (float &f : v)
    f = u(rng);
}

Case makeCase(const Block &b, std::mt19937 &rng) {
  Case c;
  c.b = b;
  c.count = b.ce == b.cin ? 2 : 3;
  c.oh = (b.hw + 2 - 3) / b.stride + 1;
  fill(c.x, b.hw * b.hw * b.cin, rng, 1.f);
  int64_t xd[4] = {1, b.cin, b.hw, b.hw};
  std::memcpy(c.xDims, xd, sizeof xd);
  int i = 0;
  if (c.count == 3) {
    int64_t d[4] = {b.ce, b.cin, 1, 1};
    std::memcpy(c.wDims, d, sizeof d);
    c.p.conv[i++] = convParams(1, 1, 0, true);
  }
  int64_t dd[4] = {b.ce, 1, 3, 3}, pd[4] = {b.cout, b.ce, 1, 1};
  std::memcpy(c.wDims + 4 * i, dd, sizeof dd);
  c.p.conv[i++] = convParams(b.ce, b.stride, 1, true);
  std::memcpy(c.wDims + 4 * i, pd, sizeof pd);
  c.p.conv[i++] = convParams(1, 1, 0, false);
  c.p.count = c.count;
  for (int k = 0; k < c.count; ++k) {
    const int64_t *d = c.wDims + 4 * k;
    fill(c.w[k], d[0] * d[1] * d[2] * d[3], rng, 1.f / std::sqrt(float(d[1] * d[2] * d[3])));
    fill(c.bias[k], d[0], rng, 0.1f);
  }
  int64_t md0[4] = {1, b.ce, b.hw, b.hw}, md1[4] = {1, b.ce, c.oh, c.oh},
          yd[4] = {1, b.cout, c.oh, c.oh};
  std::memcpy(c.midDims[0], md0, sizeof md0);
  std::memcpy(c.midDims[1], md1, sizeof md1);
  std::memcpy(c.yDims, yd, sizeof yd);
  c.mid[0].resize(b.hw * b.hw * b.ce);
  c.mid[1].resize(c.oh * c.oh * b.ce);
  c.yConvs.resize(c.oh * c.oh * b.cout);
  c.yChain.resize(c.oh * c.oh * b.cout);
  return c;
}

void runConvs(kiln::rt::Runner &r, Case &c, int64_t site) {
  const float *in = c.x.data();
  const int64_t *inDims = c.xDims;
  int stage = c.count == 3 ? 0 : 1;
  for (int k = 0; k < c.count; ++k, ++stage) {
    bool last = k == c.count - 1;
    float *out = last ? c.yConvs.data() : c.mid[stage].data();
    const int64_t *outDims = last ? c.yDims : c.midDims[stage];
    const float *res = last && c.b.residual ? c.x.data() : nullptr;
    if (kiln::rt::convForward(r, site * 4 + k, in, inDims, c.w[k].data(), c.wDims + 4 * k,
                              c.bias[k].data(), res, out, outDims, c.p.conv[k],
                              kiln::rt::ConvLayout::ChannelsLast) != KILN_OK) {
      std::fprintf(stderr, "conv failed: %s\n", kiln_rt_last_error());
      std::exit(1);
    }
    in = out;
    inDims = outDims;
  }
}

void runChain(kiln::rt::Runner &r, Case &c, int64_t site, const kiln::rt::ChainSchedule &s) {
  const float *w[3] = {c.w[0].data(), c.w[1].data(), c.w[2].data()};
  const float *bias[3] = {c.bias[0].data(), c.bias[1].data(), c.bias[2].data()};
  if (kiln::rt::convChainForward(r, site, c.x.data(), c.xDims, w, c.wDims, bias,
                                 c.b.residual ? c.x.data() : nullptr, c.yChain.data(), c.yDims, c.p,
                                 s) != KILN_OK) {
    std::fprintf(stderr, "chain failed: %s\n", kiln_rt_last_error());
    std::exit(1);
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace

int main(int argc, char **argv) {
  std::vector<int> threads{1, 2};
  int reps = 30;
  kiln::rt::ChainSchedule schedule = kiln::rt::defaultChainSchedule();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--threads") {
      threads.clear();
      for (char *s = argv[i + 1]; *s;) {
        threads.push_back(std::atoi(s));
        while (*s && *s != ',')
          ++s;
        if (*s) ++s;
      }
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (a == "--band-kb") {
      schedule.bandBytesPerThread = std::atol(argv[i + 1]) * 1024;
    } else if (a == "--lane-rows") {
      schedule.minLaneRows = std::atol(argv[i + 1]);
    }
  }
  std::mt19937 rng(7);
  std::vector<Case> cases;
  for (const Block &b : kBlocks)
    cases.push_back(makeCase(b, rng));
  for (int t : threads) {
    omp_set_num_threads(t);
    kiln::rt::Runner r;
    for (Case &c : cases)
      for (int k = 0; k < c.count; ++k)
        r.constantRanges.emplace_back(reinterpret_cast<const char *>(c.w[k].data()),
                                      c.w[k].size() * 4);
    const size_t n = cases.size();
    std::vector<std::vector<double>> tConvs(n), tChain(n);
    std::vector<double> allConvs, allChain;
    for (int rep = 0; rep < reps + 3; ++rep) {
      for (int way = 0; way < 2; ++way) {
        double total = 0;
        for (size_t i = 0; i < n; ++i) {
          auto t0 = Clock::now();
          if (way == 0)
            runConvs(r, cases[i], static_cast<int64_t>(i));
          else
            runChain(r, cases[i], static_cast<int64_t>(i), schedule);
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          total += ms;
          if (rep >= 3) (way == 0 ? tConvs : tChain)[i].push_back(ms);
        }
        if (rep >= 3) (way == 0 ? allConvs : allChain).push_back(total);
      }
    }
    std::printf("threads %d, band budget %zu KiB a thread, lanes from %lld rows a thread, %d reps "
                "(median ms)\n",
                t, schedule.bandBytesPerThread / 1024, (long long)schedule.minLaneRows, reps);
    std::printf("%-12s %5s %5s %5s %5s %3s %9s %9s %7s %9s\n", "block", "hw", "cin", "ce", "cout",
                "s", "convs", "chain", "ratio", "rel L2");
    for (size_t i = 0; i < n; ++i) {
      const Case &c = cases[i];
      double num = 0, den = 0;
      for (size_t j = 0; j < c.yConvs.size(); ++j) {
        double d = double(c.yChain[j]) - c.yConvs[j];
        num += d * d;
        den += double(c.yConvs[j]) * c.yConvs[j];
      }
      double a = median(tConvs[i]), b = median(tChain[i]);
      std::printf("%-12s %5lld %5lld %5lld %5lld %3lld %9.4f %9.4f %7.3f %9.2e\n", c.b.name,
                  (long long)c.b.hw, (long long)c.b.cin, (long long)c.b.ce, (long long)c.b.cout,
                  (long long)c.b.stride, a, b, b / a, std::sqrt(num / std::max(den, 1e-30)));
    }
    double a = median(allConvs), b = median(allChain);
    std::printf("%-12s %31s %9.4f %9.4f %7.3f\n", "all", "", a, b, b / a);
  }
  return 0;
}
