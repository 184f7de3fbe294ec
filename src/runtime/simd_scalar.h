// One float as a "vector" of one lane: the baseline-ISA instantiation of kiln's kernel
// templates (dwconv_kernel.h, gemv_kernel.h).
#pragma once

#include <cstdint>

namespace kiln::rt::simd {

struct Scalar {
  using Reg = float;
  static constexpr int W = 1;
  static Reg bcast(float v) { return v; }
  static Reg load(const float *p) { return *p; }
  static Reg loadN(const float *p, int64_t) { return *p; }
  static void store(float *p, Reg v) { *p = v; }
  static void storeN(float *p, Reg v, int64_t) { *p = v; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg mul(Reg a, Reg b) { return a * b; }
  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg div(Reg a, Reg b) { return a / b; }
  static Reg min(Reg a, Reg b) { return a < b ? a : b; }
  static Reg max(Reg a, Reg b) { return a > b ? a : b; }
};

} // namespace kiln::rt::simd
