// kiln_shim_sdpa_v1 / _v2 / _v3: scaled dot-product attention, float32, [B, H, S, D] layouts
// (_v3: any row strides, so Q/K/V are read where a fused projection wrote them).
//
// Checks the arguments, picks the kernel set of this CPU's ISA (sdpa_kernels.h), and shares
// the (batch, head) pairs out over the run's OpenMP threads: where there are two or more a
// thread, whole heads are claimed (work_claim.h: each thread its static share, then what a
// late thread has not started); else the query blocks of all heads are split evenly in
// contiguous ranges, so each thread packs K/V of a head once and works on one or two heads.
// Each thread's packed K/V and working tiles come from the runner's arena.
#include "cpu_features.h"
#include "error.h"
#include "isa_cap.h"
#include "runner.h"
#include "sdpa_kernels.h"
#include "work_claim.h"

#include <kiln/model.h>
#include <kiln/prelude.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace kiln::rt::sdpa {
namespace {

bool cpuRuns(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return cpuIsaBits() >= 512;
  if (isa == Isa::Avx2) return cpuIsaBits() >= 256;
  return true;
#else // only the generic kernels are built here (src/runtime/CMakeLists.txt)
  return isa == Isa::Generic || isa == Isa::Auto;
#endif
}

const Kernels *kernelsFor(Isa isa) {
  if (isa == Isa::Auto) {
    const int bits = usableIsaBits(); // ONEDNN_MAX_CPU_ISA caps kiln's kernels too
    isa = bits >= 512 ? Isa::Avx512 : bits >= 256 ? Isa::Avx2 : Isa::Generic;
  }
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return &avx512Kernels();
  if (isa == Isa::Avx2) return &avx2Kernels();
#endif
  return &genericKernels();
}

std::atomic<const Kernels *> &activeKernels() {
  static std::atomic<const Kernels *> active{kernelsFor(Isa::Auto)};
  return active;
}

} // namespace

bool forceIsa(Isa isa) {
  if (!cpuRuns(isa)) return false;
  activeKernels().store(kernelsFor(isa));
  return true;
}

} // namespace kiln::rt::sdpa

namespace kiln::rt {
namespace {

/// Whether heads are claimed rather than statically split (KILN_SDPA_STEAL=0: static, for A/Bs).
bool claimsHeads() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_SDPA_STEAL");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

int64_t alignedFloats(int64_t n) {
  return (n + 15) / 16 * 16;
}

/// Where each tensor's rows are: the offset of [0, 0, 0, 0] and the strides of b, h and s
/// (kiln_shim_sdpa_v3's layout; the last dim is contiguous).
struct Layout {
  int64_t offset, b, h, s;
};

int runAttention(const char *fn, kiln_shim_ctx *ctx, const float *q, const float *k, const float *v,
                 const float *mask, const int64_t *maskStrides, float *out, const int64_t *dims,
                 const float *scaleOrNull, const int64_t *layout) {
  if (!ctx || !dims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL %s", fn, !ctx ? "ctx" : "dims");
  const int64_t B = dims[0], H = dims[1], Sq = dims[2], Skv = dims[3], D = dims[4], Dv = dims[5];
  for (int i = 0; i < 6; ++i)
    if (dims[i] < 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "%s: dims[%d] is negative (%lld)", fn, i,
                  (long long)dims[i]);
  if (B * H * Sq == 0 || Dv == 0) return KILN_OK;
  if (!q || !k || !v || !out) return fail(KILN_ERR_INVALID_ARGUMENT, "%s: NULL tensor", fn);
  const float scale = scaleOrNull ? *scaleOrNull : (D > 0 ? 1.0f / std::sqrt((float)D) : 1.0f);
  int64_t ms[4] = {H * Sq * Skv, Sq * Skv, Skv, 1};
  if (maskStrides) std::memcpy(ms, maskStrides, sizeof ms);
  Layout lq{0, H * Sq * D, Sq * D, D}, lk{0, H * Skv * D, Skv * D, D},
      lv{0, H * Skv * Dv, Skv * Dv, Dv}, lo{0, H * Sq * Dv, Sq * Dv, Dv};
  if (layout) {
    Layout *all[4] = {&lq, &lk, &lv, &lo};
    for (int t = 0; t < 4; ++t) {
      const int64_t *l = layout + 4 * t;
      for (int i = 0; i < 4; ++i)
        if (l[i] < 0)
          return fail(KILN_ERR_INVALID_ARGUMENT, "%s: layout[%d] is negative (%lld)", fn, 4 * t + i,
                      (long long)l[i]);
      *all[t] = Layout{l[0], l[1], l[2], l[3]};
    }
    // Rows of one head must not overlap (a row stride below the row's length).
    if (lq.s < D || lk.s < D || lv.s < Dv || lo.s < Dv)
      return fail(KILN_ERR_INVALID_ARGUMENT, "%s: a row stride of the layout is below D or Dv", fn);
  }

  const sdpa::Kernels &kern = *sdpa::activeKernels().load(std::memory_order_relaxed);
  const int64_t heads = B * H, blocksPerHead = (Sq + kern.rowsPerBlock - 1) / kern.rowsPerBlock;
  const int64_t blocks = heads * blocksPerHead;
  const int threads = (int)std::min<int64_t>(std::max(1, omp_get_max_threads()), blocks);
  const int64_t packed = alignedFloats(kern.packedFloats(Skv, D, Dv));
  const int64_t perThread = packed + alignedFloats(kern.workFloats(D, Dv));
  auto *r = static_cast<Runner *>(ctx);
  auto *scratch = static_cast<float *>(r->arena.alloc(sizeof(float) * threads * perThread));
  if (!scratch) return fail(KILN_ERR_OUT_OF_MEMORY, "%s: cannot allocate attention tiles", fn);

  auto headAt = [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H;
    return sdpa::Head{q + lq.offset + b * lq.b + h * lq.h,
                      k + lk.offset + b * lk.b + h * lk.h,
                      v + lv.offset + b * lv.b + h * lv.h,
                      mask ? mask + b * ms[0] + h * ms[1] : nullptr,
                      ms[2],
                      ms[3],
                      out + lo.offset + b * lo.b + h * lo.h,
                      Sq,
                      Skv,
                      D,
                      Dv,
                      scale,
                      lq.s,
                      lk.s,
                      lv.s,
                      lo.s};
  };
  // Two or more heads a thread: whole heads are claimed (work_claim.h), each packed once, so a
  // late thread's heads are run by the others; fewer: each thread its share of the blocks.
  if (heads >= 2 * threads && threads > 1 && claimsHeads()) {
    WorkClaims claims(heads, threads);
#pragma omp parallel num_threads(threads)
    {
      float *mine = scratch + omp_get_thread_num() * perThread;
      claims.drain(omp_get_thread_num(), [&](int64_t bh) {
        const sdpa::Head head = headAt(bh);
        kern.packHead(head, mine);
        kern.rows(head, mine, mine + packed, 0, blocksPerHead);
      });
    }
    return KILN_OK;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    float *mine = scratch + t * perThread;
    const int64_t first = blocks * t / nt, end = blocks * (t + 1) / nt;
    for (int64_t blk = first; blk < end;) {
      const int64_t bh = blk / blocksPerHead;
      const int64_t headEnd = std::min(end, (bh + 1) * blocksPerHead);
      const sdpa::Head head = headAt(bh);
      kern.packHead(head, mine);
      kern.rows(head, mine, mine + packed, blk - bh * blocksPerHead, headEnd - bh * blocksPerHead);
      blk = headEnd;
    }
  }
  return KILN_OK;
}

} // namespace
} // namespace kiln::rt

extern "C" {

KILN_RT_API int kiln_shim_sdpa_v1(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                                  const float *v, const float *mask, const int64_t *mask_strides,
                                  float *out, const int64_t *dims, float scale) {
  return kiln::rt::runAttention("kiln_shim_sdpa_v1", ctx, q, k, v, mask, mask_strides, out, dims,
                                &scale, nullptr);
}

KILN_RT_API int kiln_shim_sdpa_v2(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                                  const float *v, const float *mask, const int64_t *mask_strides,
                                  float *out, const int64_t *dims, const float *scale) {
  return kiln::rt::runAttention("kiln_shim_sdpa_v2", ctx, q, k, v, mask, mask_strides, out, dims,
                                scale, nullptr);
}

KILN_RT_API int kiln_shim_sdpa_v3(kiln_shim_ctx *ctx, int64_t site, const float *q, const float *k,
                                  const float *v, const float *mask, const int64_t *mask_strides,
                                  float *out, const int64_t *dims, const float *scale,
                                  const int64_t *layout) {
  return kiln::rt::runAttention("kiln_shim_sdpa_v3", ctx, q, k, v, mask, mask_strides, out, dims,
                                scale, layout);
}

} // extern "C"
