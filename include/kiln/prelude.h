// Header-only helpers that generated kernels include: floor division and modulo with
// floor semantics, min/max, half types, and math declared with SIMD variants so GCC can
// vectorize exp/log/tanh/erf through glibc's libmvec. No dependency on kiln headers.
// The same helpers serve CUDA kernels: under nvcc every function is __host__ __device__
// and half conversions use the hardware instructions.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define KILN_HD __host__ __device__
#else
#define KILN_HD
extern "C" {
// glibc's libmvec provides these vector variants; declaring them lets loops using them
// vectorize without -ffast-math (which would break NaN/Inf semantics elsewhere).
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) float logf(float);
__attribute__((simd("notinbranch"))) float tanhf(float);
__attribute__((simd("notinbranch"))) float erff(float);
__attribute__((simd("notinbranch"))) float sinf(float);
__attribute__((simd("notinbranch"))) float cosf(float);
}
#endif

KILN_HD static inline int64_t kiln_floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
KILN_HD static inline int64_t kiln_imod(int64_t a, int64_t b) {
  return a - b * kiln_floordiv(a, b);
}
KILN_HD static inline int64_t kiln_imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}
KILN_HD static inline int64_t kiln_imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}
template <typename T> KILN_HD static inline T kiln_mod(T a, T b) {
  if constexpr (sizeof(T) > 0 && (T)0.5 != 0) { // floating point: Python-style mod
    T r = std::fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0) return 0;
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  }
}
#ifdef __CUDACC__
template <typename T> KILN_HD static inline T kiln_min(T a, T b) {
  if constexpr ((T)0.5 != 0) {
    if (a != a || b != b) return a + b; // NaN propagates
  }
  return a < b ? a : b;
}
template <typename T> KILN_HD static inline T kiln_max(T a, T b) {
  if constexpr ((T)0.5 != 0) {
    if (a != a || b != b) return a + b;
  }
  return a > b ? a : b;
}
#else
// NaN propagates (a + b). Both selects computed, no early return: GCC if-converts and
// vectorizes this (MaxPool, Clip); the early-return form kept those loops scalar. (The
// one-select `(a > b || a != a) ? a : b` vectorizes alone but not in a chain of them:
// GCC then tracks "is the result NaN" through selects of booleans it cannot vectorize.)
// One unordered compare asks "is either NaN": with AVX-512 a max is then vmaxps, vcmpunordps
// and a masked add, where `a != a || b != b` took two compares and a mask OR (ResNet-50's
// 3x3 max pool 1.7x faster alone; docs/perf.md, session 51).
template <typename T> static inline T kiln_min(T a, T b) {
  T m = a < b ? a : b;
  if constexpr ((T)0.5 != 0) return __builtin_isunordered(a, b) ? a + b : m;
  return m;
}
template <typename T> static inline T kiln_max(T a, T b) {
  T m = a > b ? a : b;
  if constexpr ((T)0.5 != 0) return __builtin_isunordered(a, b) ? a + b : m;
  return m;
}
#ifdef _OPENMP
// NaN-propagating max/min reductions for `omp simd`: each lane folds its elements with the
// kernel's own NaN-wins statement, and the lanes combine with kiln_max/kiln_min. OpenMP's
// built-in max/min would not keep a NaN, and without a reduction clause GCC leaves the loop
// scalar (ReduceMax, softmax's row max). Equal values may come from another lane, so a
// max of +0 and -0 can be either zero.
#pragma omp declare reduction(kiln_nanmax                                                          \
                              : float, double                                                      \
                              : omp_out = kiln_max(omp_out, omp_in))                               \
    initializer(omp_priv = -INFINITY)
#pragma omp declare reduction(kiln_nanmin                                                          \
                              : float, double                                                      \
                              : omp_out = kiln_min(omp_out, omp_in))                               \
    initializer(omp_priv = INFINITY)
#endif
// `c ? a : b` as a bit blend. GCC 12 does not vectorize a select whose condition is a
// loop-invariant combination of comparisons (`(y >= 0 && x >= 0) ? load : pad` in a padded
// window: "relevant stmt not supported"); the blend of the same bits vectorizes and gives
// the identical value. The CPU printer uses it for numeric selects.
template <typename T> static inline T kiln_select(bool c, T a, T b) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
                (sizeof(T) == 4 || sizeof(T) == 8)) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    U ua, ub;
    std::memcpy(&ua, &a, sizeof(T));
    std::memcpy(&ub, &b, sizeof(T));
    const U mask = (U)0 - (U)c;
    const U r = (ua & mask) | (ub & ~mask);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
  } else {
    return c ? a : b;
  }
}
#endif
template <typename T> KILN_HD static inline T kiln_div(T a, T b) {
  if constexpr ((T)0.5 != 0) {
    return a / b;
  } else {
    return b == 0 ? 0 : a / b; // integer division by zero is undefined in ONNX; avoid a trap
  }
}
template <typename T> KILN_HD static inline T kiln_fmod(T a, T b) {
  if constexpr ((T)0.5 != 0) {
    return std::fmod(a, b);
  } else {
    return b == 0 ? 0 : a % b;
  }
}
template <typename T> KILN_HD static inline T kiln_pow(T a, T b) {
  if constexpr ((T)0.5 != 0) {
    return std::pow(a, b);
  } else {
    return (T)std::pow((double)a, (double)b);
  }
}
template <typename T> KILN_HD static inline T kiln_abs(T a) {
  return a < 0 ? -a : a;
}
template <typename T> KILN_HD static inline T kiln_sign(T a) {
  return (T)((a > 0) - (a < 0));
}
template <typename T> KILN_HD static inline T kiln_sigmoid(T a) {
  return (T)1 / ((T)1 + std::exp(-a));
}
template <typename T, typename U> KILN_HD static inline T kiln_shl(T a, U b) {
  return b >= (U)(8 * sizeof(T)) ? 0 : (T)(a << b);
}
template <typename T, typename U> KILN_HD static inline T kiln_shr(T a, U b) {
  return b >= (U)(8 * sizeof(T)) ? 0 : (T)(a >> b);
}

typedef uint16_t kiln_half;
typedef uint16_t kiln_bfloat16;

#ifdef __CUDACC__
__device__ static inline float kiln_h2f(kiln_half h) {
  return __half2float(__ushort_as_half(h));
}
__device__ static inline kiln_half kiln_f2h(float f) {
  return __half_as_ushort(__float2half_rn(f));
}
__device__ static inline float kiln_bf2f(kiln_bfloat16 h) {
  return __uint_as_float((uint32_t)h << 16);
}
__device__ static inline kiln_bfloat16 kiln_f2bf(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
#else
KILN_HD static inline float kiln_h2f(kiln_half h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0 && man == 0) {
    bits = sign;
  } else if (exp == 0) {
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while (!(man & 0x400));
    bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

KILN_HD static inline kiln_half kiln_f2h(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) return (kiln_half)(sign | 0x7c00u | (man ? 0x200u : 0));
  if (exp >= 31) return (kiln_half)(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return (kiln_half)sign;
    man |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return (kiln_half)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return (kiln_half)half;
}

KILN_HD static inline float kiln_bf2f(kiln_bfloat16 h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
KILN_HD static inline kiln_bfloat16 kiln_f2bf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (f != f) return (kiln_bfloat16)((x >> 16) | 0x40);
  return (kiln_bfloat16)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

#endif

#ifdef __CUDACC__
/// Scatter with a reduction (1 add, 2 mul, 3 max, 4 min) on 32- or 64-bit elements: a
/// compare-and-swap loop, so every type and op takes one path.
template <typename T> __device__ static inline T kiln_combine(int op, T a, T b) {
  return op == 1 ? a + b : op == 2 ? a * b : op == 3 ? kiln_max(a, b) : kiln_min(a, b);
}
template <typename T> __device__ static inline void kiln_atomic_combine(T *p, T v, int op) {
  using W = typename std::conditional<sizeof(T) == 4, unsigned int, unsigned long long>::type;
  static_assert(sizeof(T) == sizeof(W), "atomic scatter needs 32- or 64-bit elements");
  W *word = (W *)p, old = *word, assumed;
  do {
    assumed = old;
    T cur, next;
    memcpy(&cur, &assumed, sizeof(T));
    next = kiln_combine(op, cur, v);
    W nw;
    memcpy(&nw, &next, sizeof(T));
    old = atomicCAS(word, assumed, nw);
  } while (assumed != old);
}
#endif

/// Float → integer conversion as ONNX Cast does it (truncation toward zero).
template <typename T, typename F> KILN_HD static inline T kiln_f2i(F v) {
  return (T)v;
}

// ---- ONNX's 8- and 4-bit floats (float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz, float4 e2m1) ----
// Kernels compute them as float: a load decodes the byte, a store or a Cast encodes with
// round-to-nearest-even. One generic codec driven by the format's fields keeps every
// format on the same tested path. `saturate` (ONNX Cast's attribute) maps values beyond the
// largest finite one (±inf included) to ±max; without it they become inf (e5m2) or NaN.
enum kiln_minifloat {
  KILN_F8E4M3FN = 0,
  KILN_F8E4M3FNUZ = 1,
  KILN_F8E5M2 = 2,
  KILN_F8E5M2FNUZ = 3,
  KILN_F4E2M1 = 4,
  KILN_F8E8M0 = 5 // scale-only: 2^(code - 127), 0xff = NaN; no sign, zero or inf
};

struct kiln_mf_format {
  int ebits, mbits, bias;
  int kind; // 0: IEEE-like (inf + NaNs), 1: fn (NaN = all ones), 2: fnuz (NaN = 0x80), 3: none
  uint32_t maxcode; // bits of the largest finite value, sign clear
  uint32_t nancode; // bits of the NaN produced
};

KILN_HD static inline kiln_mf_format kiln_mf_fmt(int f) {
  switch (f) {
  case KILN_F8E4M3FN:
    return {4, 3, 7, 1, 0x7eu, 0x7fu};
  case KILN_F8E4M3FNUZ:
    return {4, 3, 8, 2, 0x7fu, 0x80u};
  case KILN_F8E5M2:
    return {5, 2, 15, 0, 0x7bu, 0x7eu};
  case KILN_F8E5M2FNUZ:
    return {5, 2, 16, 2, 0x7fu, 0x80u};
  default: // float4 e2m1 has no NaN; ONNX's reference turns NaN into 0x8 (-0)
    return {2, 1, 1, 3, 0x7u, 0x8u};
  }
}

/// The value of the float8e8m0 code `bits`.
KILN_HD static inline float kiln_e8m0_decode(uint32_t bits) {
  bits &= 0xffu;
  return bits == 0xffu ? NAN : std::ldexp(1.0f, (int)bits - 127);
}

/// ONNX Cast's rule to float8e8m0 (opset 25): x is first a float32; its sign is dropped and
/// its exponent field kept, rounded by `mode` (0 "up": any fraction rounds up; 1 "down":
/// truncate; 2 "nearest": ONNX's guard/round/sticky rule) and, with `saturate`, held at 0xfe
/// instead of rounding into 0xff (NaN). Inf and NaN become 0xff.
KILN_HD static inline uint32_t kiln_e8m0_encode(float x, int saturate, int mode) {
  uint32_t b;
  memcpy(&b, &x, 4);
  const uint32_t e = (b >> 23) & 0xffu;
  if (e == 0xffu) return 0xffu;
  int up = 0;
  if (mode == 0) up = (b & 0x7fffffu) != 0;
  if (mode == 2) up = (b & 0x400000u) && ((b & 0x200000u) || (b & 0x1fffffu) || e > 0);
  if (saturate && e == 0xfeu) up = 0;
  return e + (uint32_t)up;
}

/// The value of the code `bits` (sign in bit ebits+mbits).
KILN_HD static inline float kiln_mf_decode(uint32_t bits, int f) {
  if (f == KILN_F8E8M0) return kiln_e8m0_decode(bits);
  const kiln_mf_format m = kiln_mf_fmt(f);
  const int width = 1 + m.ebits + m.mbits;
  bits &= (1u << width) - 1;
  const uint32_t sign = bits >> (width - 1), e = (bits >> m.mbits) & ((1u << m.ebits) - 1),
                 man = bits & ((1u << m.mbits) - 1), emax = (1u << m.ebits) - 1;
  if (m.kind == 2 && bits == 0x80u) return NAN;
  if (m.kind == 1 && e == emax && man == (1u << m.mbits) - 1) return NAN;
  if (m.kind == 0 && e == emax) return man ? NAN : (sign ? -INFINITY : INFINITY);
  float v = e == 0 ? std::ldexp((float)man, 1 - m.bias - m.mbits)
                   : std::ldexp((float)(man | (1u << m.mbits)), (int)e - m.bias - m.mbits);
  return sign ? -v : v;
}

/// x (float or double: each rounds once, so a double never rounds twice) as the code of
/// format f, rounded to nearest even.
template <typename T> KILN_HD static inline uint32_t kiln_mf_encode(T x, int f, int saturate) {
  // e8m0 values (stores, the exact result of a Cast): "nearest" keeps every code's value,
  // 2^-127 included, which Cast's default "up" would move to 2^-126 (lowering spells Cast).
  if (f == KILN_F8E8M0) return kiln_e8m0_encode((float)x, saturate, 2);
  const kiln_mf_format m = kiln_mf_fmt(f);
  const int width = 1 + m.ebits + m.mbits;
  const uint32_t signbit = 1u << (width - 1);
  if (x != x) return m.nancode;
  const uint32_t sign = std::signbit(x) ? signbit : 0u;
  const T a = x < 0 ? -x : x;
  const T maxval = (T)kiln_mf_decode(m.maxcode, f);
  const uint32_t overflow = saturate || m.kind == 3 ? (sign | m.maxcode)
                            : m.kind == 0           ? (sign | (m.maxcode + 1)) // inf
                                                    : m.nancode;
  if (a > maxval * 2) return overflow; // also inf; keeps frexp below in range
  const int minexp = 1 - m.bias;       // exponent of the smallest normal
  int k = 0;
  std::frexp(a, &k); // a = f * 2^k, f in [0.5, 1): a's exponent is k - 1
  const int exp = (a == 0 || k - 1 < minexp) ? minexp : k - 1;
  // a / quantum is exact (quantum a power of two); rint rounds half to even.
  const T steps = std::rint(std::ldexp(a, m.mbits - exp));
  const T r = std::ldexp(steps, exp - m.mbits);
  if (r > maxval) return overflow;
  if (r == 0) return m.kind == 2 ? 0u : sign; // fnuz has no -0
  int rk = 0;
  std::frexp(r, &rk);
  if (rk - 1 < minexp) return sign | (uint32_t)steps; // subnormal: exponent field 0
  const uint32_t mant = (uint32_t)std::ldexp(r, m.mbits - (rk - 1)) - (1u << m.mbits);
  return sign | ((uint32_t)(rk - 1 + m.bias) << m.mbits) | mant;
}

/// x rounded to format f and back (a Cast to it, as the value kernels compute with).
template <typename T> KILN_HD static inline float kiln_mf_round(T x, int f, int saturate) {
  return kiln_mf_decode(kiln_mf_encode(x, f, saturate), f);
}

/// An integer wrapped to `bits` bits (int4/uint4/int2/uint2 hold one element per byte).
template <typename T> KILN_HD static inline T kiln_wrap_bits(int64_t v, int bits, bool is_signed) {
  const int64_t mask = ((int64_t)1 << bits) - 1, low = v & mask;
  if (!is_signed) return (T)low;
  const int64_t half = (int64_t)1 << (bits - 1);
  return (T)((low ^ half) - half);
}
