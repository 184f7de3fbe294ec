// kiln_shim_matmul_multi_v1: matmuls that share A (a transformer's Q, K and V projections) as
// one oneDNN GEMM over the concatenated B = [B_0 | B_1 | ...].
//
// One GEMM of N = sum n_g keeps more of the machine busy at small M than G GEMMs of n_g each
// (docs/perf.md, issue 12). The concatenated, packed B is derived data: when every B_g lies in
// the runner's constants it is built once and kept in the derived-weights cache, keyed by the
// G original pointers, so a constant update (Runner::useConstants drops the cache) or a swap
// to the other constant set (other pointers) re-packs it from the new weights. B's that are
// data are concatenated and packed on every call. Biases are concatenated on every call (a
// few thousand floats), so they are never stale.
#include "error.h"
#include "runner.h"
#include "shim_matmul.h"
#include "weight_memory.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <cstring>
#include <vector>

namespace kiln::rt {

int64_t multiTotalN(const kiln_matmul_multi_params_v1 &p) {
  int64_t n = 0;
  for (int32_t g = 0; g < p.count; ++g)
    n += p.n[g];
  return n;
}

// [bias_0 | bias_1 | ...] with zeros for absent ones.
void concatMultiBias(const float *const *bias, const kiln_matmul_multi_params_v1 &p, float *out) {
  for (int32_t g = 0; g < p.count; ++g) {
    if (bias[g])
      std::memcpy(out, bias[g], sizeof(float) * p.n[g]);
    else
      std::memset(out, 0, sizeof(float) * p.n[g]);
    out += p.n[g];
  }
}

// Plain row-major [k, N] = [B_0 | B_1 | ...].
void concatMultiB(const float *const *b, const kiln_matmul_multi_params_v1 &p, float *out) {
  const int64_t n = multiTotalN(p);
  for (int64_t row = 0; row < p.k; ++row) {
    float *dst = out + row * n;
    for (int32_t g = 0; g < p.count; ++g) {
      if (p.n[g] > 0) std::memcpy(dst, b[g] + row * p.n[g], sizeof(float) * p.n[g]);
      dst += p.n[g];
    }
  }
}

void releaseMultiB(DnnlCache &cache, const float *const *b, const kiln_matmul_multi_params_v1 &p) {
  int64_t floats[KILN_MATMUL_MULTI_MAX];
  for (int32_t g = 0; g < p.count; ++g)
    floats[g] = p.k * p.n[g];
  cache.releaseSources(b, floats, p.count);
}

// Keyed by every original pointer: a swap to the other constant set misses, and an update of
// the active set clears the whole derived cache (Runner::useConstants).
CacheKey multiPackedKey(int64_t site, int64_t tag, const float *const *b,
                        const kiln_matmul_multi_params_v1 &p) {
  CacheKey k;
  k.push(site);
  k.push(tag);
  k.push(p.k);
  for (int32_t g = 0; g < p.count; ++g) {
    k.push(static_cast<int64_t>(reinterpret_cast<uintptr_t>(b[g])));
    k.push(p.n[g]);
  }
  return k;
}

namespace {

using dnnl::memory;

// Tags the cache keys of this shim apart from other shims' keys of the same site.
constexpr int64_t kMultiTag = 0x6d756c7469; // "multi"

struct MultiEntry : CacheEntry {
  dnnl::matmul prim;
  memory a, c, bias, scratchpad;
  memory::desc bPlain, bWant;
  std::vector<float> concatBias;
  std::vector<float> concatB; // plain [k, N] staging for B's that are data
  memory bScratch;            // their packed copy
};

// The concatenated B in the primitive's layout, derived from constant B's.
struct PackedConcatB : CacheEntry {
  memory::desc desc;
  memory mem;
  std::shared_ptr<void> owner; // mem's buffer (weight_memory.h)
};

int checkArgs(int64_t site, const float *a, const float *const *b, float *c,
              const kiln_matmul_multi_params_v1 &p) {
  long long s = static_cast<long long>(site);
  if (p.count < 1 || p.count > KILN_MATMUL_MULTI_MAX)
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul_multi site %lld: count %d not in 1..%d", s,
                p.count, KILN_MATMUL_MULTI_MAX);
  if (p.m < 0 || p.k < 0)
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul_multi site %lld: negative m or k", s);
  for (int32_t g = 0; g < p.count; ++g)
    if (p.n[g] < 0)
      return fail(KILN_ERR_INVALID_ARGUMENT, "matmul_multi site %lld: n[%d] is negative", s, g);
  const int64_t n = multiTotalN(p);
  if (p.lda < p.k || p.ldc < n)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "matmul_multi site %lld: leading dimension too small (lda %lld < k %lld or ldc "
                "%lld < total n %lld)",
                s, static_cast<long long>(p.lda), static_cast<long long>(p.k),
                static_cast<long long>(p.ldc), static_cast<long long>(n));
  if (p.m == 0 || n == 0) return KILN_OK;
  if (!c || (p.k > 0 && (!a || !b)))
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul_multi site %lld: NULL a, b or c", s);
  if (p.k > 0)
    for (int32_t g = 0; g < p.count; ++g)
      if (p.n[g] > 0 && !b[g])
        return fail(KILN_ERR_INVALID_ARGUMENT, "matmul_multi site %lld: b[%d] is NULL", s, g);
  return KILN_OK;
}

bool anyBias(const float *const *bias, const kiln_matmul_multi_params_v1 &p) {
  if (!bias) return false;
  for (int32_t g = 0; g < p.count; ++g)
    if (bias[g] && p.n[g] > 0) return true;
  return false;
}

CacheKey primitiveKey(int64_t site, const kiln_matmul_multi_params_v1 &p, bool bias) {
  CacheKey k;
  k.push(site);
  k.push(kMultiTag);
  k.push(bias);
  k.push(p.m);
  k.push(p.k);
  k.push(p.lda);
  k.push(p.ldc);
  k.push(p.count);
  for (int32_t g = 0; g < p.count; ++g)
    k.push(p.n[g]);
  return k;
}

std::unique_ptr<MultiEntry> build(DnnlCache &cache, const kiln_matmul_multi_params_v1 &p,
                                  bool bias) {
  dnnl::engine &eng = cache.engine();
  const auto f32 = memory::data_type::f32;
  const int64_t n = multiTotalN(p);
  memory::desc aMd({p.m, p.k}, f32, memory::dims{p.lda, 1});
  memory::desc bMd({p.k, n}, f32, memory::format_tag::any);
  memory::desc cMd({p.m, n}, f32, memory::dims{p.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::primitive_desc pd;
  if (bias) {
    memory::desc biasMd({1, n}, f32, memory::format_tag::ab);
    pd = {dnnl::matmul::desc(aMd, bMd, biasMd, cMd), attr, eng};
  } else {
    pd = {dnnl::matmul::desc(aMd, bMd, cMd), attr, eng};
  }
  auto e = std::make_unique<MultiEntry>();
  e->prim = dnnl::matmul(pd);
  e->a = memory(pd.src_desc(), eng, nullptr);
  e->c = memory(pd.dst_desc(), eng, nullptr);
  e->bPlain = memory::desc({p.k, n}, f32, memory::format_tag::ab);
  e->bWant = pd.weights_desc();
  if (bias) {
    e->bias = memory(pd.bias_desc(), eng, nullptr);
    e->concatBias.resize(n);
  }
  e->scratchpad = memory(pd.scratchpad_desc(), eng);
  return e;
}

// Plain [k, N] in `staging`, reordered into dst (the primitive's layout).
void packInto(DnnlCache &cache, const float *const *b, const kiln_matmul_multi_params_v1 &p,
              const MultiEntry &e, std::vector<float> &staging, memory &dst) {
  staging.resize(static_cast<size_t>(p.k * multiTotalN(p)));
  concatMultiB(b, p, staging.data());
  memory src(e.bPlain, cache.engine(), staging.data());
  if (e.bPlain == e.bWant) {
    // No blocking wanted: the packed copy is the plain one, kept in dst.
    std::memcpy(dst.get_data_handle(), staging.data(), sizeof(float) * staging.size());
    return;
  }
  dnnl::reorder(src, dst).execute(cache.stream(), src, dst);
  cache.stream().wait();
}

// The packed concatenated B for this call: from the derived cache when every B is a constant.
memory packedB(Runner &r, int64_t site, const float *const *b, const kiln_matmul_multi_params_v1 &p,
               MultiEntry &e) {
  DnnlCache &cache = r.dnnl;
  bool constant = true;
  for (int32_t g = 0; g < p.count; ++g)
    constant = constant && (p.n[g] == 0 || r.isConstant(b[g]));
  if (constant) {
    // The stored copy is shared by the container's runners and never replaced: when this
    // call's primitive wants another layout (another M), it packs a copy of its own below.
    CacheKey key = multiPackedKey(site, kMultiTag, b, p);
    auto *packed = static_cast<PackedConcatB *>(cache.findDerived(key));
    if (!packed) {
      auto fresh = std::make_unique<PackedConcatB>();
      fresh->desc = e.bWant;
      fresh->mem = weightMemory(e.bWant, cache.engine(), fresh->owner);
      std::vector<float> staging;
      packInto(cache, b, p, e, staging, fresh->mem);
      packed = static_cast<PackedConcatB *>(cache.insertDerived(key, std::move(fresh)));
      releaseMultiB(cache, b, p);
    }
    if (packed->desc == e.bWant) return packed->mem;
  }
  if (!e.bScratch || e.bScratch.get_desc() != e.bWant) e.bScratch = memory(e.bWant, cache.engine());
  packInto(cache, b, p, e, e.concatB, e.bScratch);
  return e.bScratch;
}

// k == 0: every output row is its bias (or zero).
void biasOnly(const float *const *bias, float *c, const kiln_matmul_multi_params_v1 &p) {
  std::vector<float> row(static_cast<size_t>(multiTotalN(p)), 0.f);
  if (bias) concatMultiBias(bias, p, row.data());
  for (int64_t i = 0; i < p.m; ++i)
    std::memcpy(c + i * p.ldc, row.data(), sizeof(float) * row.size());
}

} // namespace

int matmulMultiForward(Runner &r, int64_t site, const float *a, const float *const *b,
                       const float *const *bias, float *c, const kiln_matmul_multi_params_v1 &p) {
  if (int st = checkArgs(site, a, b, c, p)) return st;
  if (p.m == 0 || multiTotalN(p) == 0) return KILN_OK;
  if (p.k == 0) {
    biasOnly(bias, c, p);
    return KILN_OK;
  }
  if (ownGemmMultiFits(r, b, p)) return ownGemmMultiForward(r, site, a, b, bias, c, p);
  try {
    DnnlCache &cache = r.dnnl;
    const bool withBias = anyBias(bias, p);
    CacheKey key = primitiveKey(site, p, withBias);
    auto *e = static_cast<MultiEntry *>(cache.find(key));
    if (!e) e = static_cast<MultiEntry *>(cache.insert(key, build(cache, p, withBias)));
    memory bMem = packedB(r, site, b, p, *e);
    e->a.set_data_handle(const_cast<float *>(a));
    e->c.set_data_handle(c);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, e->a},
                                         {DNNL_ARG_WEIGHTS, bMem},
                                         {DNNL_ARG_DST, e->c},
                                         {DNNL_ARG_SCRATCHPAD, e->scratchpad}};
    if (withBias) {
      concatMultiBias(bias, p, e->concatBias.data());
      e->bias.set_data_handle(e->concatBias.data());
      args[DNNL_ARG_BIAS] = e->bias;
    }
    dnnl::stream &s = cache.stream();
    e->prim.execute(s, args);
    s.wait();
    return KILN_OK;
  } catch (const dnnl::error &err) {
    return fail(KILN_ERR_INTERNAL, "matmul_multi site %lld: oneDNN error: %s (status %d)",
                static_cast<long long>(site), err.what(), static_cast<int>(err.status));
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul_multi site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt

extern "C" KILN_RT_API int kiln_shim_matmul_multi_v1(kiln_shim_ctx *ctx, int64_t site,
                                                     const float *a, const float *const *b,
                                                     const float *const *bias, float *c,
                                                     const kiln_matmul_multi_params_v1 *params) {
  if (!ctx || !params)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT,
                          "kiln_shim_matmul_multi_v1: NULL ctx or params");
  return kiln::rt::matmulMultiForward(*static_cast<kiln::rt::Runner *>(ctx), site, a, b, bias, c,
                                      *params);
}
