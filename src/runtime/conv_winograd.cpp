// Winograd F(4x4, 3x3) and F(2x2, 3x3) convolutions: which convs take them with which tile,
// the weight transforms and their cache, scratch, and the call into the ISA's kernels
// (conv_winograd_impl.h).
#include "conv_winograd.h"

#include "cpu_features.h"
#include "error.h"
#include "isa_cap.h"
#include "shim_conv.h"
#include "weight_memory.h"

#include <kiln/model.h>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include <strings.h>

namespace kiln::rt::winograd {
namespace {

// A float array owned by a cache entry: a weight buffer (weight_memory.h), so transformed
// weights of 2 MiB and more sit on huge pages.
struct FloatBuffer : CacheEntry {
  float *data = nullptr;
  size_t size = 0;
  std::shared_ptr<void> owner;
  void reserve(size_t n) {
    if (n <= size) return;
    owner = allocateWeightBuffer(n * sizeof(float));
    data = static_cast<float *>(owner.get());
    size = n;
  }
};

bool cpuRuns(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return cpuIsaBits() >= 512;
  return cpuIsaBits() >= 256;
#else
  (void)isa;
  return false;
#endif
}

const Kernels *kernelsFor(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Auto) isa = cpuRuns(Isa::Avx512) ? Isa::Avx512 : Isa::Avx2;
  if (!cpuRuns(isa)) return nullptr;
  return isa == Isa::Avx512 ? &avx512Kernels() : &avx2Kernels();
#else
  (void)isa;
  return nullptr;
#endif
}

// KILN_CONV_WINOGRAD=0 turns the path off, =avx2 picks the AVX2 kernels; so does an
// ONEDNN_MAX_CPU_ISA below AVX-512 (one below AVX2 turns it off), so one variable caps both
// oneDNN and kiln.
struct Settings {
  std::atomic<bool> enabled{true};
  std::atomic<const Kernels *> kernels{nullptr};
  std::atomic<Tile> tile{Tile::Auto};
  std::atomic<Split> split{Split::Auto};
  Settings() {
    const char *splitBy = std::getenv("KILN_WINOGRAD_SPLIT");
    if (splitBy && std::strcmp(splitBy, "tiles") == 0) split = Split::Tiles;
    if (splitBy && std::strcmp(splitBy, "phases") == 0) split = Split::Phases;
    const char *forced = std::getenv("KILN_CONV_WINOGRAD_TILE");
    if (forced && std::strcmp(forced, "2") == 0) tile = Tile::F2;
    if (forced && std::strcmp(forced, "4") == 0) tile = Tile::F4;
    const char *env = std::getenv("KILN_CONV_WINOGRAD");
    Isa isa = Isa::Auto;
    if (env && std::strcmp(env, "0") == 0) enabled = false;
    if (env && strcasecmp(env, "avx2") == 0) isa = Isa::Avx2;
    const int cap = isaCapBits();
    if (cap < 512) isa = Isa::Avx2;
    if (cap < 256) enabled = false; // capped below AVX2
    kernels = kernelsFor(isa);
  }
};

Settings &settings() {
  static Settings s;
  return s;
}

constexpr int64_t kMinTiles = 16;
constexpr int64_t kMaxTilesF2 = 36;

int64_t ceilDiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Tiles per pass: V and M of a chunk stay within about 2 MiB (the L2 caches of two cores),
// but a chunk keeps enough GEMM rows for the micro-kernel to stream each weight panel well.
int64_t chunkTiles(int64_t T, int64_t C, int64_t K, int64_t points) {
  constexpr int64_t kBudgetBytes = 2 << 20;
  const int64_t perTile = points * (C + K) * int64_t(sizeof(float));
  return std::min(std::max<int64_t>(kBudgetBytes / perTile / 6 * 6, 24), std::max<int64_t>(T, 1));
}

// Whether each thread should take its own tiles through all three phases (Impl::runByTiles)
// rather than a share of each phase: where every thread gets at least kMinTilesPerThread
// tiles, so that each thread's streaming all of U stays cheap against its GEMM rows. Zen 5, 2
// threads (docs/perf.md, session 28): in ResNet-50 its three 56x56x64 convs (196 tiles each)
// took 0.79-0.87 ms a run against 1.26-1.50; the 28x28x128 ones (49 tiles, U from memory in
// the model) level, the 14x14x256 ones 2-10% slower, hence 48 and not bench/conv's 24 (where
// warm U made 28x28 3-6% faster).
bool splitByTiles(int64_t T) {
  constexpr int64_t kMinTilesPerThread = 48;
  if (omp_in_parallel() || omp_get_max_threads() < 2) return false;
  const Split forced = settings().split;
  if (forced != Split::Auto) return forced == Split::Tiles;
  return T >= kMinTilesPerThread * omp_get_max_threads();
}

} // namespace

bool forceIsa(Isa isa) {
  const Kernels *k = kernelsFor(isa);
  if (!k) return false;
  settings().kernels = k;
  return true;
}

void setEnabled(bool on) {
  settings().enabled = on;
}

void forceTile(Tile tile) {
  settings().tile = tile;
}

void forceSplit(Split split) {
  settings().split = split;
}

int outputTile(const int64_t *yDims) {
  const Tile forced = settings().tile;
  if (forced != Tile::Auto) return forced == Tile::F2 ? 2 : 4;
  // F(4x4)'s weights (4x the direct ones) are reused once per 4x4 tile of each image: below
  // kMaxTilesF2 such tiles per image they stream from memory for too few rows of the GEMMs.
  return ceilDiv(yDims[2], 4) * ceilDiv(yDims[3], 4) < kMaxTilesF2 ? 2 : 4;
}

bool wanted(const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
            const kiln_conv_params_v1 &p) {
  Settings &s = settings();
  if (!s.enabled || !s.kernels) return false;
  if (p.spatial_rank != 2 || p.groups != 1 || wDims[2] != 3 || wDims[3] != 3) return false;
  for (int i = 0; i < 2; ++i)
    if (p.strides[i] != 1 || p.dilations[i] != 1) return false;
  const int64_t C = xDims[1], K = wDims[0];
  // The kernels need whole vectors of channels and whole weight panels (64 columns).
  if (C % 16 != 0 || K % 64 != 0 || xDims[0] < 1) return false;
  // Each transformed weight is reused once per 4x4 output tile. With fewer than 16 tiles per
  // image the GEMMs stream 4x the direct weights for little reuse: at 7x7x512 (4 tiles)
  // kiln-wg measured 0.85-1.07x direct's time (bench/conv) and would hold 38 MB per layer.
  // Per image, not per batch, so the memory a model holds does not depend on its batch.
  if (ceilDiv(yDims[2], 4) * ceilDiv(yDims[3], 4) < kMinTiles) return false;
  for (int i = 0; i < 2; ++i)
    if (yDims[2 + i] < 1 || yDims[2 + i] != xDims[2 + i] + p.pads_begin[i] + p.pads_end[i] - 2)
      return false;
  return true;
}

void transformWeights(const float *w, int64_t K, int64_t C, int panel, int tm, float *U) {
  // G (A x 3) of F(4, 3) for points 0, ±1, ±2, ∞, and of F(2, 3) for 0, ±1, ∞.
  static const double G4[6][3] = {{1 / 4., 0, 0},
                                  {-1 / 6., -1 / 6., -1 / 6.},
                                  {-1 / 6., 1 / 6., -1 / 6.},
                                  {1 / 24., 1 / 12., 1 / 6.},
                                  {1 / 24., -1 / 12., 1 / 6.},
                                  {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
  const double(*G)[3] = tm == 2 ? G2 : G4;
  const int a = tm + 2;
  const int64_t panels = K / panel;
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const float *g = w + (k * C + c) * 9;
      double t[6][3], u[6][6];
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < 3; ++j)
          t[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j)
          u[i][j] = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
      const int64_t pi = k / panel, col = k % panel;
      for (int xi = 0; xi < a * a; ++xi)
        U[((xi * panels + pi) * C + c) * panel + col] = static_cast<float>(u[xi / a][xi % a]);
    }
}

int forward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
            const int64_t *wDims, const float *bias, const float *residual, float *y,
            const int64_t *yDims, const kiln_conv_params_v1 &p) {
  const Kernels *kern = settings().kernels.load();
  if (!kern)
    return fail(KILN_ERR_INTERNAL, "conv site %lld: no Winograd kernels for this CPU",
                static_cast<long long>(site));
  try {
    Problem pr{};
    pr.N = xDims[0];
    pr.C = xDims[1];
    pr.H = xDims[2];
    pr.W = xDims[3];
    pr.K = wDims[0];
    pr.OH = yDims[2];
    pr.OW = yDims[3];
    pr.padT = p.pads_begin[0];
    pr.padL = p.pads_begin[1];
    const int tm = outputTile(yDims);
    const int64_t points = (tm + 2) * (tm + 2);
    pr.tilesH = ceilDiv(pr.OH, tm);
    pr.tilesW = ceilDiv(pr.OW, tm);
    const int64_t T = pr.N * pr.tilesH * pr.tilesW;
    pr.chunk = chunkTiles(T, pr.C, pr.K, points);
    pr.splitTiles = splitByTiles(T);
    pr.x = x;
    pr.bias = bias;
    pr.residual = residual;
    pr.y = y;
    pr.activate = p.post_op != KILN_POST_NONE;
    const ClampBounds bounds = clampBounds(p);
    pr.lo = bounds.lo;
    pr.hi = bounds.hi;

    DnnlCache &cache = r.dnnl;
    const bool constantWeights = r.isConstant(w);
    const int64_t uFloats = points * pr.K * pr.C;
    // Per-runner scratch shared by every Winograd call: V and M of one chunk (and the
    // transformed weights when w is not a constant). It only grows, to the largest call.
    auto *scratch = &cache.scratch<FloatBuffer>(0x57494e4f); // "WINO"
    const int64_t vFloats = points * pr.chunk * pr.C, mFloats = points * pr.chunk * pr.K;
    scratch->reserve(vFloats + mFloats + (constantWeights ? 0 : uFloats));
    pr.V = scratch->data;
    pr.M = scratch->data + vFloats;

    if (constantWeights) {
      CacheKey key;
      key.push(site);
      key.push(static_cast<int64_t>(reinterpret_cast<uintptr_t>(w)));
      key.push(kern->panel);
      key.push(pr.K);
      key.push(pr.C);
      key.push(tm);
      auto *u = static_cast<FloatBuffer *>(cache.findDerived(key));
      if (!u) {
        auto fresh = std::make_unique<FloatBuffer>();
        fresh->reserve(uFloats);
        transformWeights(w, pr.K, pr.C, kern->panel, tm, fresh->data);
        u = static_cast<FloatBuffer *>(
            cache.insertDerived(key, std::move(fresh), w, sizeof(float) * 9 * pr.K * pr.C));
      }
      pr.U = u->data;
    } else {
      float *u = scratch->data + vFloats + mFloats;
      transformWeights(w, pr.K, pr.C, kern->panel, tm, u);
      pr.U = u;
    }
    (tm == 2 ? kern->run2 : kern->run4)(pr);
    return KILN_OK;
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory for Winograd buffers",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt::winograd
