// The attention kernels for CPUs without AVX2/FMA (compiled for the baseline ISA; see
// sdpa_kernels.h): 4-float vectors as plain arrays, which the compiler maps to whatever SIMD
// the baseline has, and libm's expf per lane.
#include <cstdint>

namespace kiln::rt::sdpa {
namespace {

struct Generic {
  static constexpr int W = 4;
  struct Reg {
    float x[W];
  };
  static Reg zero() { return Reg{}; }
  static Reg load(const float *p) { return Reg{{p[0], p[1], p[2], p[3]}}; }
  static void store(float *p, Reg r) {
    for (int i = 0; i < W; ++i)
      p[i] = r.x[i];
  }
  static Reg bcast(float v) { return Reg{{v, v, v, v}}; }
  template <class F> static Reg map(Reg a, Reg b, F f) {
    Reg r;
    for (int i = 0; i < W; ++i)
      r.x[i] = f(a.x[i], b.x[i]);
    return r;
  }
  static Reg fma(Reg a, Reg b, Reg c) {
    Reg r;
    for (int i = 0; i < W; ++i)
      r.x[i] = a.x[i] * b.x[i] + c.x[i];
    return r;
  }
  static Reg add(Reg a, Reg b) {
    return map(a, b, [](float x, float y) { return x + y; });
  }
  static Reg sub(Reg a, Reg b) {
    return map(a, b, [](float x, float y) { return x - y; });
  }
  static Reg mul(Reg a, Reg b) {
    return map(a, b, [](float x, float y) { return x * y; });
  }
  static Reg max(Reg a, Reg b) {
    return map(a, b, [](float x, float y) { return x > y ? x : y; });
  }
  static float hmax(Reg r) {
    float m = r.x[0];
    for (int i = 1; i < W; ++i)
      m = r.x[i] > m ? r.x[i] : m;
    return m;
  }
  static bool allAtMost(Reg r, Reg limit) {
    for (int i = 0; i < W; ++i)
      if (!(r.x[i] <= limit.x[i])) return false;
    return true;
  }
  static float hsum(Reg r) { return (r.x[0] + r.x[1]) + (r.x[2] + r.x[3]); }
  static void transpose8(const float *src, int64_t lds, float *dst, int64_t ldd) {
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < 8; ++c)
        dst[c * ldd + r] = src[r * lds + c];
  }
  static Reg exp(Reg r) {
    for (int i = 0; i < W; ++i)
      r.x[i] = __builtin_expf(r.x[i]);
    return r;
  }
};

} // namespace
} // namespace kiln::rt::sdpa

#include "sdpa_tile.h"

namespace kiln::rt::sdpa {

const Kernels &genericKernels() {
  static constexpr Kernels k = Tile<Generic, 4, false>::kernels("generic");
  return k;
}

} // namespace kiln::rt::sdpa
