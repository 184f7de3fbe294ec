// Helpers shared by the shim tests: random data, relative L2 error, a fused activation in
// float64, a scoped OpenMP thread count.
#pragma once

#include <kiln/shim.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace kiln::test {

inline std::vector<float> randomVector(std::mt19937 &rng, size_t n) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

// ||got - want|| / ||want|| over the first n values (0 when both are zero).
inline double relL2(const float *got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double d = got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

// The float64 reference of a conv's or GEMM's fused activation (post_op, clip bounds).
template <class Params> double applyPost(double v, const Params &p) {
  if (p.post_op == KILN_POST_RELU) return std::max(v, 0.0);
  if (p.post_op == KILN_POST_CLIP)
    return std::min(std::max(v, double(p.clip_min)), double(p.clip_max));
  return v;
}

// The params of a 2-D conv of one group, no dilation: strides, pads {top, left, bottom,
// right}, the fused activation with clip bounds [lo, hi].
inline kiln_conv_params_v1 conv2dParams(int64_t strideH, int64_t strideW, const int64_t (&pads)[4],
                                        int32_t post, float lo, float hi) {
  kiln_conv_params_v1 p{};
  p.spatial_rank = 2;
  p.groups = 1;
  p.strides[0] = strideH;
  p.strides[1] = strideW;
  p.dilations[0] = p.dilations[1] = 1;
  p.pads_begin[0] = pads[0];
  p.pads_begin[1] = pads[1];
  p.pads_end[0] = pads[2];
  p.pads_end[1] = pads[3];
  p.post_op = post;
  p.clip_min = lo;
  p.clip_max = hi;
  return p;
}

// Runs a test at a thread count and restores the previous one.
struct ThreadCount {
  int saved = omp_get_max_threads();
  explicit ThreadCount(int n) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

} // namespace kiln::test
