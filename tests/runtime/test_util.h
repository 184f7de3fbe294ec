// Helpers shared by the shim tests: random data and relative L2 error.
#pragma once

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

} // namespace kiln::test
