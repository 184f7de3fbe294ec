// The matmul shim's route to kiln's GEMV (gemv.h) for weight GEMMs of one to four rows: B
// packed into panels once per constant set, kept with the other derived weights (dropped
// and rebuilt when the constants change, shared by the container's runners).
#include "error.h"
#include "gemv.h"
#include "shim_conv.h"
#include "shim_matmul.h"
#include "weight_memory.h"

#include <cstdlib>
#include <cstring>
#include <memory>

namespace kiln::rt {
namespace {

struct PackedEntry : CacheEntry {
  std::shared_ptr<void> buffer;
  const float *packed() const { return static_cast<const float *>(buffer.get()); }
};

bool gemvEnabled() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_MATMUL_GEMV");
    return !v || std::strcmp(v, "0") != 0;
  }();
  return on;
}

} // namespace

bool gemvFits(const kiln_matmul_params_v1 &p, bool constantB) {
  return gemvEnabled() && constantB && p.batch == 1 && p.m >= 1 && p.m <= kGemvMaxRows &&
         !p.trans_a && p.k > 0 && p.alpha != 0.f && (p.addend_kind == 0 || p.addend_kind == 1) &&
         (p.post_op == KILN_POST_NONE || p.post_op == KILN_POST_RELU ||
          p.post_op == KILN_POST_CLIP);
}

// The tag tells the packed panels apart from other derived weights of the same site and
// pointer ("gemv").
const WeightPacking kPanelPacking{0x67656d76, gemvPackedFloats, packGemvWeights};

std::shared_ptr<void> packWeights(const WeightPacking &how, const float *b, int64_t n, int64_t k,
                                  int64_t ldb, bool transB) {
  std::shared_ptr<void> buffer = allocateWeightBuffer(sizeof(float) * how.floats(n, k));
  how.pack(b, n, k, ldb, transB, static_cast<float *>(buffer.get()));
  return buffer;
}

const float *packedWeights(Runner &r, int64_t site, const float *b, const kiln_matmul_params_v1 &p,
                           const WeightPacking &how) {
  CacheKey key;
  for (int64_t v : {how.tag, site, static_cast<int64_t>(reinterpret_cast<uintptr_t>(b)), p.n, p.k,
                    p.ldb, static_cast<int64_t>(p.trans_b)})
    key.push(v);
  auto *e = static_cast<PackedEntry *>(r.dnnl.findDerived(key));
  if (!e) {
    auto fresh = std::make_unique<PackedEntry>();
    fresh->buffer = packWeights(how, b, p.n, p.k, p.ldb, p.trans_b);
    const size_t bBytes = sizeof(float) * ((p.trans_b ? p.n : p.k) - 1) * p.ldb +
                          sizeof(float) * (p.trans_b ? p.k : p.n);
    e = static_cast<PackedEntry *>(r.dnnl.insertDerived(key, std::move(fresh), b, bBytes));
  }
  return e->packed();
}

GemvParams weightGemmParams(const kiln_matmul_params_v1 &p, const float *addend,
                            const float *residual) {
  GemvParams g{};
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.lda = p.lda;
  g.ldc = p.ldc;
  g.ldr = p.ldc; // the residual is laid out like C
  g.alpha = p.alpha;
  g.beta = p.beta;
  g.bias = p.addend_kind == 1 ? addend : nullptr;
  g.residual = residual;
  const ClampBounds bounds = clampBounds(p);
  g.lo = bounds.lo;
  g.hi = bounds.hi;
  return g;
}

int gemvForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                const float *residual, float *c, const kiln_matmul_params_v1 &p) {
  try {
    const float *packed = packedWeights(r, site, b, p);
    gemv(weightGemmParams(p, addend, residual), a, packed, c);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul site %lld: out of memory packing B",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt
