// Helpers of libs_check.cpp, its only includer: fp16/bf16 rounding and encoding, device
// buffers, seeded random data, the per-dtype tolerances and the JSON case report.
#pragma once

#include <kiln/shim.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

#define CK(x)                                                                                      \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                                \
      std::exit(2);                                                                                \
    }                                                                                              \
  } while (0)

uint16_t toHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffffu;
  if (exp <= 0) { // subnormal half (inputs here are never that small, kept for completeness)
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  uint32_t h = sign | static_cast<uint32_t>(exp) << 10 | man >> 13, rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h; // round to nearest even
  return static_cast<uint16_t>(h);
}

float fromHalf(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(man | 0x400u), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

uint16_t toBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  x += 0x7fffu + ((x >> 16) & 1); // round to nearest even
  return static_cast<uint16_t>(x >> 16);
}

float fromBf16(uint16_t h) {
  uint32_t x = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

const char *typeName(int t) {
  return t == KILN_ELEM_F32 ? "f32" : t == KILN_ELEM_F16 ? "f16" : "bf16";
}
size_t esz(int t) {
  return t == KILN_ELEM_F32 ? 4 : 2;
}

// Rounds v in place to what the device type holds and returns the device bytes.
std::vector<uint8_t> encode(std::vector<float> &v, int t) {
  std::vector<uint8_t> out(v.size() * esz(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == KILN_ELEM_F32) {
      std::memcpy(&out[i * 4], &v[i], 4);
      continue;
    }
    uint16_t h = t == KILN_ELEM_F16 ? toHalf(v[i]) : toBf16(v[i]);
    v[i] = t == KILN_ELEM_F16 ? fromHalf(h) : fromBf16(h);
    std::memcpy(&out[i * 2], &h, 2);
  }
  return out;
}

std::vector<float> decode(const std::vector<uint8_t> &b, int t) {
  size_t n = b.size() / esz(t);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == KILN_ELEM_F32) {
      std::memcpy(&v[i], &b[i * 4], 4);
      continue;
    }
    uint16_t h;
    std::memcpy(&h, &b[i * 2], 2);
    v[i] = t == KILN_ELEM_F16 ? fromHalf(h) : fromBf16(h);
  }
  return v;
}

struct Dev {
  void *p = nullptr;
  size_t bytes = 0;
  Dev() = default;
  explicit Dev(size_t n) : bytes(n) { CK(cudaMalloc(&p, n ? n : 1)); }
  Dev(const Dev &) = delete;
  ~Dev() {
    if (p) cudaFree(p);
  }
};

std::mt19937 rng(1234);
std::vector<float> randVec(size_t n) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(rng);
  return v;
}

void upload(Dev &d, const std::vector<uint8_t> &b) {
  CK(cudaMemcpy(d.p, b.data(), b.size(), cudaMemcpyHostToDevice));
}
// All-ones bits: NaN in every type, so a read of the output before it is written shows.
void fillNan(Dev &d) {
  CK(cudaMemset(d.p, 0xff, d.bytes));
}
// Uploads and memsets are not ordered with the library's stream: wait for everything.
void syncAll() {
  CK(cudaDeviceSynchronize());
}

double tolFor(int t) {
  return t == KILN_ELEM_F32 ? 2e-5 : t == KILN_ELEM_F16 ? 2e-3 : 1.6e-2;
}

std::string json;
int failures = 0, cases = 0;

void report(const std::string &name, const char *kind, int t, int rc, int wantRc, double maxErr,
            const char *err) {
  bool ok = rc == wantRc && (rc != 0 || maxErr <= tolFor(t));
  std::string msg = rc ? err : "";
  for (char &ch : msg)
    if (ch == '"' || ch == '\\' || ch < ' ') ch = ' '; // keep the JSON valid
  ++cases;
  if (!ok) ++failures;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "%s\n    {\"name\": \"%s\", \"kind\": \"%s\", \"dtype\": \"%s\", \"rc\": %d, "
                "\"max_err\": %.3e, \"tol\": %.1e, \"ok\": %s%s%s%s}",
                json.empty() ? "" : ",", name.c_str(), kind, typeName(t), rc, maxErr, tolFor(t),
                ok ? "true" : "false", rc ? ", \"message\": \"" : "", msg.c_str(), rc ? "\"" : "");
  json += buf;
}

} // namespace
