// kiln_shim_sdpa_v1 / _v2: scaled dot-product attention, float32, [B, H, S, D] layouts.
//
// Per (b, h): K transposed into a per-thread block from the runner's arena, then for each
// query row the scores, a max-subtracted softmax, and the weighted sum of V rows. Work is
// split over (b, h) with OpenMP (the thread count of the calling run). Accumulation is float32 with
// float64 only for nothing: the softmax denominator sums at most Skv terms in [0, 1].
#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/prelude.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kiln::rt {
namespace {

/// All Sq output rows of one (batch, head). K is transposed once into `kt` so scores are
/// computed as AXPYs over the key axis (vectorizable, no horizontal reductions), then a
/// max-subtracted softmax and the weighted sum of V rows. Compiled per ISA below (libkiln_rt
/// is built for the baseline ISA) so the simd loops use AVX2/AVX-512 and libmvec's expf.
template <int Isa>
__attribute__((always_inline)) inline void
attentionHeadBody(const float *qb, const float *kb, const float *vb, const float *maskHead,
                  const int64_t *ms, float *kt, float *s, float *ob, int64_t Sq, int64_t Skv,
                  int64_t D, int64_t Dv, float scale) {
  for (int64_t j = 0; j < Skv; ++j)
    for (int64_t d = 0; d < D; ++d)
      kt[d * Skv + j] = kb[j * D + d];
  for (int64_t i = 0; i < Sq; ++i) {
    const float *qr = qb + i * D;
    float *o = ob + i * Dv;
#pragma omp simd
    for (int64_t j = 0; j < Skv; ++j)
      s[j] = 0.f;
    for (int64_t d = 0; d < D; ++d) {
      const float qd = qr[d] * scale;
      const float *kr = kt + d * Skv;
#pragma omp simd
      for (int64_t j = 0; j < Skv; ++j)
        s[j] += qd * kr[j];
    }
    if (maskHead) {
      const float *mr = maskHead + i * ms[2];
      for (int64_t j = 0; j < Skv; ++j)
        s[j] += mr[j * ms[3]];
    }
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < Skv; ++j)
      mx = s[j] > mx ? s[j] : mx;
#pragma omp simd
    for (int64_t d = 0; d < Dv; ++d)
      o[d] = 0.f;
    if (mx == -INFINITY) continue; // every key masked out (or Skv == 0): zeros
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < Skv; ++j) {
      s[j] = expf(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < Skv; ++j) {
      const float p = s[j] * inv;
      const float *vr = vb + j * Dv;
#pragma omp simd
      for (int64_t d = 0; d < Dv; ++d)
        o[d] += p * vr[d];
    }
  }
}

// One compiled copy per ISA, picked at run time (not with target_clones: its ifunc resolver
// runs before sanitizer runtimes initialise and crashes TSan/ASan builds).
#define KILN_HEAD_PARAMS                                                                           \
  const float *qb, const float *kb, const float *vb, const float *maskHead, const int64_t *ms,     \
      float *kt, float *s, float *ob, int64_t Sq, int64_t Skv, int64_t D, int64_t Dv, float scale
#define KILN_HEAD_ARGS qb, kb, vb, maskHead, ms, kt, s, ob, Sq, Skv, D, Dv, scale
__attribute__((target("avx512f"))) void attentionHeadAvx512(KILN_HEAD_PARAMS) {
  attentionHeadBody<2>(KILN_HEAD_ARGS);
}
__attribute__((target("avx2,fma"))) void attentionHeadAvx2(KILN_HEAD_PARAMS) {
  attentionHeadBody<1>(KILN_HEAD_ARGS);
}
void attentionHeadBaseline(KILN_HEAD_PARAMS) {
  attentionHeadBody<0>(KILN_HEAD_ARGS);
}

using HeadFn = void (*)(KILN_HEAD_PARAMS);
HeadFn pickAttentionHead() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return attentionHeadAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return attentionHeadAvx2;
  return attentionHeadBaseline;
}
#undef KILN_HEAD_ARGS
#undef KILN_HEAD_PARAMS

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
  const int64_t per = D * Skv + (Skv ? Skv : 1); // transposed K block + one score row
  auto *scratch = static_cast<float *>(r->arena.alloc(sizeof(float) * threads * per));
  if (!scratch) return fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot allocate score rows", fn);

  const int64_t heads = B * H;
  static const HeadFn attentionHead = pickAttentionHead();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t bh = 0; bh < heads; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    float *mine = scratch + (int64_t)omp_get_thread_num() * per;
    const float *maskHead = mask ? mask + b * ms[0] + h * ms[1] : nullptr;
    attentionHead(q + bh * Sq * D, k + bh * Skv * D, v + bh * Skv * Dv, maskHead, ms, mine,
                  mine + D * Skv, out + bh * Sq * Dv, Sq, Skv, D, Dv, scale);
  }
  return KILN_OK;
}

} // namespace
} // namespace kiln::rt

extern "C" {

KILN_RT_API int kiln_shim_sdpa_v1(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                                  const float *v, const float *mask, const int64_t *mask_strides,
                                  float *out, const int64_t *dims, float scale) {
  return kiln::rt::sdpa("kiln_shim_sdpa_v1", ctx, q, k, v, mask, mask_strides, out, dims, &scale);
}

KILN_RT_API int kiln_shim_sdpa_v2(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                                  const float *v, const float *mask, const int64_t *mask_strides,
                                  float *out, const int64_t *dims, const float *scale) {
  return kiln::rt::sdpa("kiln_shim_sdpa_v2", ctx, q, k, v, mask, mask_strides, out, dims, scale);
}

} // extern "C"
