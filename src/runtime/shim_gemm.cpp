// The matmul shims' route to kiln's GEMM (gemm.h): weight GEMMs on any CPU with AVX2, through
// the AVX-512 tiles where the CPU and ONEDNN_MAX_CPU_ISA allow them, else the AVX2 tiles. B is
// packed once into 16-column panels and kept with the derived weights (shared by the
// container's runners, dropped and rebuilt when the constants change).
#include "error.h"
#include "gemm.h"
#include "gemm_strassen.h"
#include "gemv.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "shim_matmul.h"
#include "weight_memory.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace kiln::rt {

// The tag tells B's Strassen combinations apart from its panels ("strsn").
const WeightPacking kStrassenPacking{0x737472736e, strassenPackedFloats, packStrassenWeights};

namespace {

constexpr int64_t kBiasTag = 0x6f776e676d6d;          // "owngmm": the multi shim's biases
constexpr int64_t kMultiPackTag = 0x6f776e6d6c74;     // "ownmlt": a concatenated, packed B
constexpr int64_t kMultiStrassenTag = 0x6d7374727373; // "mstrss": the same, concatenated

struct BiasScratch : CacheEntry {
  std::vector<float> bias; // the multi shim's concatenated biases
};

struct PackedConcat : CacheEntry {
  std::shared_ptr<void> buffer;
};

GemmPost postOf(int32_t post) {
  if (post == KILN_POST_GELU_ERF) return GemmPost::GeluErf;
  if (post == KILN_POST_GELU_TANH) return GemmPost::GeluTanh;
  return GemmPost::Clamp;
}

/// The GEMM tiles' parameters for a weight GEMM: the GEMV's (weightGemmParams) and the post-op.
GemmParams weightGemm(const kiln_matmul_params_v1 &p, const float *addend, const float *residual) {
  GemmParams g;
  static_cast<GemvParams &>(g) = weightGemmParams(p, addend, residual);
  g.post = postOf(p.post_op);
  return g;
}

/// The same with C in blocks of one 16-column panel, blockStride floats apart.
GemmParams blockedWeightGemm(const kiln_matmul_params_v1 &p, const float *addend,
                             int64_t blockStride) {
  GemmParams g = weightGemm(p, addend, nullptr);
  g.ldc = kGemvPanel;
  g.cBlockStride = blockStride;
  return g;
}

bool avx512Tiles() {
  static const bool wide = usableIsaBits() == 512;
  return wide;
}

/// Shapes the tiles run well: at most 1/8 of the last panel padding (N = 24 computes 32
/// columns: 336 x 24 x 144 ran at 0.77x oneDNN's speed on the 6 x 16 tile), except that the
/// AVX2 driver runs the last 24 columns of an N 8 past a whole panel on a 4 x 24 tile of their
/// own (gemm_avx2_tail.cpp: 224 x 24 x 96 and 224 x 24 x 144 at 1.19x and 1.16x oneDNN's median),
/// and enough K: 32 for the AVX2 tile, or exactly 16 or 24, which its lean tile runs
/// (gemm_avx2_lean.cpp; the general tile spent as long in each tile's epilogue as in its FMAs
/// there, 336 x 144 x 24 at 0.96x oneDNN; the lean one, Zen 3, B in cache: 896 x 96 x 16 1.40x, 672
/// x 144 x 24 1.28x, 448 x 144 x 24 1.29x oneDNN's median speed). The AVX-512 tile takes K >= 256
/// and N >= 512, the transformer GEMMs where it beat oneDNN's AVX-512 kernels (Zen 5: 1.05-1.15x at
/// 1 and 2 threads; Sapphire Rapids: 1.05-1.10x at 1 thread at M = 128, level at 2); below that
/// oneDNN matched or beat it (a 1x1 conv's 3136 x 64 x 256: 0.73-0.90x; 784 x 256 x 1024 on
/// Sapphire Rapids: 0.85x). With few rows (a 7 x 7 image, or 14 x 14 with K >= 256) it also takes
/// narrower GEMMs, where oneDNN's matmul runs at 50-70% of the FMA peak (Intel Xeon, bench/gemm:
/// MobileNetV2's 7 x 7 expansions and projections, 49 x 960 x 160 and 49 x 160 x 960, 1.19-1.21x;
/// 98 rows 1.15-1.18x; 196 x 96 x 576 1.08x, 196 x 256 x 1024 1.07x; but 196 x 576 x 96 0.97x and
/// K or N = 64 0.89-0.95x, so those keep oneDNN). Any M: a last strip of fewer rows runs a
/// tile of its own rows (session 25: 7-26 rows 1.6-2.7x oneDNN's speed, which these had kept
/// while the tiles computed whole strips).
bool tileFits(int64_t m, int64_t n, int64_t k) {
  const int64_t cols = (n + kGemvPanel - 1) / kGemvPanel * kGemvPanel;
  const bool fewRows = k >= 96 && n >= 96 && (m <= 128 || (m <= 256 && k >= 256));
  const bool enough =
      avx512Tiles() ? (k >= 256 && n >= 512) || fewRows : k >= 32 || k == 16 || k == 24;
  const bool avx2Tail = !avx512Tiles() && n % kGemvPanel == 8 && n >= 24;
  return enough && (avx2Tail || 8 * (cols - n) <= cols);
}

void runGemm(const GemmParams &g, const float *a, const float *packedB, float *c) {
  if (avx512Tiles())
    gemmAvx512(g, a, packedB, c);
  else
    gemmAvx2(g, a, packedB, c);
}

} // namespace

bool ownGemmRouteOn() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_MATMUL_OWN_GEMM");
    if (v && std::strcmp(v, "0") == 0) return false;
    // AVX2 or AVX-512: the tiles beat oneDNN 2.6's kernels on the transformer shapes that
    // tileFits admits (Zen 5: BERT-base's GEMMs 5-10% faster in the model; an Intel Xeon
    // with AMX, session 20: bench/gemm 1.08-1.18x, BERT-base and GPT-2 3-5% faster in the
    // model). On Sapphire Rapids, before the tile's L1 prefetches, it was level at 1 thread.
    const int bits = usableIsaBits();
    return bits == 512 || bits == 256;
  }();
  return on;
}

GemmRowGroups gemmRowGroups(int64_t m, int64_t tileRows, int64_t maxStrips, int64_t columnUnits) {
  GemmRowGroups r;
  r.strips = (m + tileRows - 1) / tileRows;
  r.threads = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  int64_t perGroup = std::max<int64_t>(1, std::min(r.strips, maxStrips));
  while (perGroup > 1 && ((r.strips + perGroup - 1) / perGroup) * columnUnits < 4 * r.threads)
    perGroup = (perGroup + 1) / 2;
  r.groups = (r.strips + perGroup - 1) / perGroup;
  r.perGroup = (r.strips + r.groups - 1) / r.groups;
  return r;
}

namespace {
std::atomic<bool> &claimsItems() {
  static std::atomic<bool> on = [] {
    const char *v = std::getenv("KILN_GEMM_STEAL");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}
} // namespace

bool gemmClaimsItems() {
  return claimsItems().load(std::memory_order_relaxed);
}

void setGemmClaimsItems(bool on) {
  claimsItems().store(on, std::memory_order_relaxed);
}

bool gemmAvx2Supported() {
  return cpuIsaBits() >= 256;
}

bool ownGemmFits(const kiln_matmul_params_v1 &p, bool constantB, const float *residual,
                 const float *c) {
  return ownGemmRouteOn() && constantB && p.batch == 1 && !p.trans_a && p.m > 0 &&
         tileFits(p.m, p.n, p.k) && p.alpha != 0.f && (p.addend_kind == 0 || p.addend_kind == 1) &&
         (!residual || residual != c || p.alpha == 1.f);
}

void packedGemm(const float *a, const float *packedB, const float *addend, const float *residual,
                float *c, const kiln_matmul_params_v1 &p) {
  runGemm(weightGemm(p, addend, residual), a, packedB, c);
}

int ownGemmForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                   const float *residual, float *c, const kiln_matmul_params_v1 &p) {
  try {
    if (strassenFits(p.m, p.n, p.k)) {
      gemmStrassen(weightGemm(p, addend, residual), a,
                   packedWeights(r, site, b, p, kStrassenPacking), c);
      return KILN_OK;
    }
    packedGemm(a, packedWeights(r, site, b, p), addend, residual, c, p);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul site %lld: out of memory",
                static_cast<long long>(site));
  }
}

bool ownGemmBlocksFit(const kiln_matmul_params_v1 &p, bool constantB) {
  return !avx512Tiles() && ownGemmFits(p, constantB, nullptr, nullptr) &&
         !strassenFits(p.m, p.n, p.k) && gemmAvx2WritesBlocks(blockedWeightGemm(p, nullptr, 1));
}

int ownGemmForwardBlocks(Runner &r, int64_t site, const float *a, const float *b,
                         const float *addend, float *c, const kiln_matmul_params_v1 &p,
                         int64_t blockStride) {
  try {
    gemmAvx2(blockedWeightGemm(p, addend, blockStride), a, packedWeights(r, site, b, p), c);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul site %lld: out of memory",
                static_cast<long long>(site));
  }
}

bool ownGemmMultiFits(Runner &r, const float *const *b, const kiln_matmul_multi_params_v1 &p) {
  if (!ownGemmRouteOn() || p.m <= 0 || !tileFits(p.m, multiTotalN(p), p.k)) return false;
  for (int32_t g = 0; g < p.count; ++g)
    if (p.n[g] > 0 && !r.isConstant(b[g])) return false;
  return true;
}

int ownGemmMultiForward(Runner &r, int64_t site, const float *a, const float *const *b,
                        const float *const *bias, float *c, const kiln_matmul_multi_params_v1 &p) {
  try {
    const int64_t n = multiTotalN(p);
    const bool strassen = strassenFits(p.m, n, p.k);
    const CacheKey key = multiPackedKey(site, strassen ? kMultiStrassenTag : kMultiPackTag, b, p);
    auto *e = static_cast<PackedConcat *>(r.dnnl.findDerived(key));
    if (!e) {
      std::vector<float> plain(static_cast<size_t>(p.k * n));
      concatMultiB(b, p, plain.data());
      auto fresh = std::make_unique<PackedConcat>();
      fresh->buffer =
          packWeights(strassen ? kStrassenPacking : kPanelPacking, plain.data(), n, p.k, n, false);
      e = static_cast<PackedConcat *>(r.dnnl.insertDerived(key, std::move(fresh)));
      releaseMultiB(r.dnnl, b, p);
    }
    GemmParams g;
    g.m = p.m;
    g.n = n;
    g.k = p.k;
    g.lda = p.lda;
    g.ldc = g.ldr = p.ldc;
    g.alpha = g.beta = 1.f;
    g.bias = nullptr;
    g.residual = nullptr;
    if (bias) {
      std::vector<float> &concat = r.dnnl.scratch<BiasScratch>(kBiasTag).bias;
      concat.resize(static_cast<size_t>(n));
      concatMultiBias(bias, p, concat.data());
      g.bias = concat.data();
    }
    g.lo = -std::numeric_limits<float>::infinity();
    g.hi = std::numeric_limits<float>::infinity();
    const auto *packed = static_cast<const float *>(e->buffer.get());
    if (strassen)
      gemmStrassen(g, a, packed, c);
    else
      runGemm(g, a, packed, c);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul_multi site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt
