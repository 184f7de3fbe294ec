// 3x3 stride-1 convolutions of ResNet-18/50 at 224 (batch 1, pad 1, bias + ReLU, channels-last
// in and out as kiln calls them), timed four ways:
//   direct   kiln's conv shim with the Winograd path off: oneDNN 2.6 convolution_direct
//   dnnl-wg  oneDNN's convolution_winograd (src/dst blocked as it wants; the NHWC<->blocked
//            reorders kiln would need are included), "n/a" where oneDNN has none
//   dnnl-auto oneDNN's convolution_auto, reorders included; the implementation it picked
//   kiln-wg  kiln's Winograd F(4x4, 3x3) (src/runtime/conv_winograd*)
// GFLOP/s count direct-method FLOPs (2*OH*OW*K*C*9). kiln-wg's rel L2 error against direct
// is printed as a sanity check.
//
//   build/release/bench/conv/kiln_conv_bench [--threads 1,2] [--reps 40] [--isa avx512|avx2]
//
// ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN (and, through it, kiln's kernels) at AVX2. Each way is
// timed in alternating rounds and the fastest call reported (the machine is shared).
#include "conv_winograd.h"
#include "shim_conv.h"

#include <kiln/runtime.h>

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using Clock = std::chrono::steady_clock;

struct Shape {
  int64_t hw, c;
};

double msOf(const std::function<void()> &f) {
  auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// oneDNN's conv with algorithm `alg` on NHWC user memory; empty when oneDNN has no
// implementation. `impl` gets the implementation's name.
std::function<void()> dnnlConv(dnnl::engine &eng, dnnl::stream &s, dnnl::algorithm alg,
                               const Shape &sh, float *x, float *w, float *b, float *y,
                               std::string &impl) {
  memory::dims src{1, sh.c, sh.hw, sh.hw}, wei{sh.c, sh.c, 3, 3};
  const auto f32 = memory::data_type::f32;
  memory::desc srcAny(src, f32, tag::any), dstAny(src, f32, tag::any), weiAny(wei, f32, tag::any);
  memory::desc biasMd({sh.c}, f32, tag::x);
  dnnl::post_ops ops;
  ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg, srcAny, weiAny,
                                      biasMd, dstAny, {1, 1}, {0, 0}, {1, 1}, {1, 1});
    pd = dnnl::convolution_forward::primitive_desc(d, attr, eng);
  } catch (const dnnl::error &) {
    impl = "n/a";
    return {};
  }
  impl = pd.impl_info_str();
  auto srcUser = memory({src, f32, tag::nhwc}, eng, x),
       dstUser = memory({src, f32, tag::nhwc}, eng, y);
  auto weiUser = memory({wei, f32, tag::oihw}, eng, w), biasM = memory(biasMd, eng, b);
  auto srcM = memory(pd.src_desc(), eng), dstM = memory(pd.dst_desc(), eng);
  auto weiM = memory(pd.weights_desc(), eng);
  dnnl::reorder(weiUser, weiM).execute(s, weiUser, weiM);
  s.wait();
  auto prim = dnnl::convolution_forward(pd);
  auto scratch = memory(pd.scratchpad_desc(), eng);
  const bool rs = pd.src_desc() != srcUser.get_desc(), rd = pd.dst_desc() != dstUser.get_desc();
  dnnl::reorder inR = rs ? dnnl::reorder(srcUser, srcM) : dnnl::reorder();
  dnnl::reorder outR = rd ? dnnl::reorder(dstM, dstUser) : dnnl::reorder();
  return [=, &s]() mutable {
    if (rs) inR.execute(s, srcUser, srcM);
    prim.execute(s, {{DNNL_ARG_SRC, rs ? srcM : srcUser},
                     {DNNL_ARG_WEIGHTS, weiM},
                     {DNNL_ARG_BIAS, biasM},
                     {DNNL_ARG_DST, rd ? dstM : dstUser},
                     {DNNL_ARG_SCRATCHPAD, scratch}});
    if (rd) outR.execute(s, dstM, dstUser);
    s.wait();
  };
}

std::vector<int> parseList(const char *s) {
  std::vector<int> out;
  for (const char *p = s; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',')
      ++p;
    if (*p) ++p;
  }
  return out;
}

} // namespace

int main(int argc, char **argv) {
  std::vector<int> threads{1, 2};
  int reps = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads"))
      threads = parseList(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--isa")) {
      auto isa = !std::strcmp(argv[i + 1], "avx2") ? kiln::rt::winograd::Isa::Avx2
                                                   : kiln::rt::winograd::Isa::Avx512;
      if (!kiln::rt::winograd::forceIsa(isa)) {
        std::fprintf(stderr, "--isa %s: this CPU cannot run it\n", argv[i + 1]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const Shape shapes[] = {{56, 64}, {28, 128}, {14, 256}, {7, 512}};
  std::printf("%-16s %3s %16s %16s %16s %16s  %s\n", "shape", "thr", "direct ms(GF/s)", "dnnl-wg",
              "dnnl-auto", "kiln-wg", "kiln-wg rel L2 / dnnl impls");
  for (int nt : threads) {
    omp_set_num_threads(nt);
    for (const Shape &sh : shapes) {
      kiln::rt::Runner r;
      std::mt19937 rng(7);
      std::uniform_real_distribution<float> dist(-1.f, 1.f);
      auto rnd = [&](size_t n) {
        std::vector<float> v(n);
        for (float &f : v)
          f = dist(rng);
        return v;
      };
      const int64_t c = sh.c, hw = sh.hw;
      std::vector<float> x = rnd(c * hw * hw), w = rnd(c * c * 9), b = rnd(c);
      for (float &f : w)
        f *= 1.f / std::sqrt(9.f * c);
      std::vector<float> yd(c * hw * hw), yw(c * hw * hw), yo(c * hw * hw);
      r.constantRanges.emplace_back(reinterpret_cast<const char *>(w.data()), w.size() * 4);
      int64_t xd[4] = {1, c, hw, hw}, wd[4] = {c, c, 3, 3};
      kiln_conv_params_v1 p{};
      p.spatial_rank = 2;
      p.groups = 1;
      p.post_op = KILN_POST_RELU;
      for (int i = 0; i < 2; ++i) {
        p.strides[i] = p.dilations[i] = 1;
        p.pads_begin[i] = p.pads_end[i] = 1;
      }
      // direct: the shim with the Winograd path off; kiln-wg: the Winograd kernels called
      // directly, so shapes its predicate turns down (7x7) are timed too.
      auto check = [](int st) {
        if (st) {
          std::fprintf(stderr, "error: %s\n", kiln_rt_last_error());
          std::exit(1);
        }
      };
      auto direct = [&] {
        kiln::rt::winograd::setEnabled(false);
        check(kiln::rt::convForward(r, 0, x.data(), xd, w.data(), wd, b.data(), nullptr, yd.data(),
                                    xd, p, kiln::rt::ConvLayout::ChannelsLast));
      };
      auto winograd = [&] {
        check(kiln::rt::winograd::forward(r, 1, x.data(), xd, w.data(), wd, b.data(), nullptr,
                                          yw.data(), xd, p));
      };
      dnnl::engine &eng = r.dnnl.engine();
      dnnl::stream &s = r.dnnl.stream();
      std::string wgImpl, autoImpl;
      auto wg = dnnlConv(eng, s, dnnl::algorithm::convolution_winograd, sh, x.data(), w.data(),
                         b.data(), yo.data(), wgImpl);
      auto au = dnnlConv(eng, s, dnnl::algorithm::convolution_auto, sh, x.data(), w.data(),
                         b.data(), yo.data(), autoImpl);
      std::vector<std::function<void()>> ways{direct, wg, au, winograd};
      std::vector<double> best(ways.size(), 1e30);
      for (int rep = 0; rep < reps; ++rep)
        for (size_t i = 0; i < ways.size(); ++i)
          if (ways[i]) best[i] = std::min(best[i], rep < 2 ? 1e30 : msOf(ways[i]));
      double num = 0, den = 0;
      for (size_t i = 0; i < yd.size(); ++i) {
        num += double(yw[i] - yd[i]) * (yw[i] - yd[i]);
        den += double(yd[i]) * yd[i];
      }
      const double gflop = 2.0 * hw * hw * c * c * 9 / 1e9;
      char cell[4][40];
      for (size_t i = 0; i < ways.size(); ++i) {
        if (!ways[i])
          std::snprintf(cell[i], sizeof cell[i], "n/a");
        else
          std::snprintf(cell[i], sizeof cell[i], "%.3f (%.0f)", best[i], gflop / best[i] * 1e3);
      }
      char name[32];
      std::snprintf(name, sizeof name, "%lldx%lld %lld", (long long)hw, (long long)hw,
                    (long long)c);
      std::printf("%-16s %3d %16s %16s %16s %16s  %.1e / wg=%s auto=%s\n", name, nt, cell[0],
                  cell[1], cell[2], cell[3], std::sqrt(num / den), wgImpl.c_str(),
                  autoImpl.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
