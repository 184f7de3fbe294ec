// kiln_shim_sdpa_v1 / _v2: scaled dot-product attention, float32, [B, H, S, D] layouts.
//
// One score row per (b, h, i): scores in a per-thread row from the runner's arena, a
// max-subtracted softmax, then the weighted sum of V rows. Work is split over (b, h, i) with
// OpenMP (the thread count of the calling run). Accumulation is float32 with float64 only
// for the softmax denominator.
#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::rt {
namespace {

int sdpa(const char *fn, kiln_shim_ctx *ctx, const float *q, const float *k, const float *v,
         const float *mask, const int64_t *maskStrides, float *out, const int64_t *dims,
         const float *scaleOrNull) {
  if (!ctx || !dims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL %s", fn, !ctx ? "ctx" : "dims");
  const int64_t B = dims[0], H = dims[1], Sq = dims[2], Skv = dims[3], D = dims[4], Dv = dims[5];
  for (int i = 0; i < 6; ++i)
    if (dims[i] < 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "%s: dims[%d] is negative (%lld)", fn, i,
                  (long long)dims[i]);
  const int64_t rows = B * H * Sq;
  if (rows == 0 || Dv == 0) return KILN_OK;
  if (!q || !k || !v || !out) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL tensor", fn);
  const float scale = scaleOrNull ? *scaleOrNull : (D > 0 ? 1.0f / std::sqrt((float)D) : 1.0f);
  int64_t ms[4] = {H * Sq * Skv, Sq * Skv, Skv, 1};
  if (maskStrides) std::memcpy(ms, maskStrides, sizeof ms);

  auto *r = static_cast<Runner *>(ctx);
  const int threads = std::max(1, omp_get_max_threads());
  auto *scratch = static_cast<float *>(r->arena.alloc(sizeof(float) * threads * (Skv ? Skv : 1)));
  if (!scratch) return fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot allocate score rows", fn);

#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t i = row % Sq, bh = row / Sq, b = bh / H, h = bh % H;
    float *s = scratch + (int64_t)omp_get_thread_num() * Skv;
    const float *qr = q + row * D;
    const float *kb = k + bh * Skv * D;
    const float *vb = v + bh * Skv * Dv;
    float *o = out + row * Dv;
    float mx = -INFINITY;
    for (int64_t j = 0; j < Skv; ++j) {
      const float *kr = kb + j * D;
      float dot = 0.f;
      for (int64_t d = 0; d < D; ++d)
        dot += qr[d] * kr[d];
      float sc = dot * scale;
      if (mask) sc += mask[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]];
      s[j] = sc;
      mx = std::max(mx, sc);
    }
    for (int64_t d = 0; d < Dv; ++d)
      o[d] = 0.f;
    if (mx == -INFINITY) continue; // every key masked out (or Skv == 0): zeros
    double sum = 0;
    for (int64_t j = 0; j < Skv; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < Skv; ++j) {
      const float p = s[j] * inv;
      const float *vr = vb + j * Dv;
      for (int64_t d = 0; d < Dv; ++d)
        o[d] += p * vr[d];
    }
  }
  return KILN_OK;
}

} // namespace
} // namespace kiln::rt

extern "C" {

KILN_RT_API int kiln_shim_sdpa_v1(kiln_shim_ctx *ctx, int64_t site, const float *q,
                                  const float *k, const float *v, const float *mask,
                                  const int64_t *mask_strides, float *out, const int64_t *dims,
                                  float scale) {
  return kiln::rt::sdpa("kiln_shim_sdpa_v1", ctx, q, k, v, mask, mask_strides, out, dims, &scale);
}

KILN_RT_API int kiln_shim_sdpa_v2(kiln_shim_ctx *ctx, int64_t site, const float *q,
                                  const float *k, const float *v, const float *mask,
                                  const int64_t *mask_strides, float *out, const int64_t *dims,
                                  const float *scale) {
  return kiln::rt::sdpa("kiln_shim_sdpa_v2", ctx, q, k, v, mask, mask_strides, out, dims, scale);
}

} // extern "C"
