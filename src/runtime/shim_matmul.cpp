// kiln_shim_matmul_v1: batched strided matmul through oneDNN, primitives cached per runner.
//
// One 3-D primitive covers the batch when oneDNN accepts the strided descriptors (a batch
// stride of 0 becomes a batch dim of 1, which oneDNN broadcasts); otherwise a 2-D
// primitive runs once per matrix. alpha is oneDNN's output scale, a row addend is oneDNN's
// bias (pre-scaled by beta), a full addend is copied into C and added by a sum post-op.
// kiln_shim_matmul_v2's residual is a binary-add post-op reading it in place (a sum
// post-op when it is C itself); its GELUs are eltwise post-ops after it.
#include "shim_matmul.h"

#include "error.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/runtime.h>
#include <kiln/shim.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace kiln::rt {
namespace {

using dnnl::memory;

struct MatmulEntry : CacheEntry {
  dnnl::matmul prim;
  memory a, b, c, bias, residual, scratchpad;
  bool perMatrix = false; // loop over the batch with a 2-D primitive
  std::vector<float> scaledBias;
  // Constant B (weights) in the blocked layout the primitive prefers, reordered once per
  // constant set and kept in the runner's weight cache (DnnlCache::weights).
  bool packedB = false;
  memory::desc bPlain, bWant;
  memory bScratch;
  // The execute arguments, built with the entry: a call only swaps data handles (and the
  // packed B's memory), so small GEMMs -- the conv chain's bands -- build no map per call.
  std::unordered_map<int, memory> args;
};

int checkArgs(int64_t site, const float *a, const float *b, const float *addend,
              const float *residual, float *c, const kiln_matmul_params_v1 &p, int level) {
  long long s = static_cast<long long>(site);
  bool empty = p.batch == 0 || p.m == 0 || p.n == 0;
  if ((!c && !empty) || ((!a || !b) && !empty && p.k > 0))
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul site %lld: NULL a, b or c", s);
  if (p.batch < 0 || p.m < 0 || p.n < 0 || p.k < 0)
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul site %lld: negative batch/m/n/k", s);
  if (p.lda < (p.trans_a ? p.m : p.k) || p.ldb < (p.trans_b ? p.k : p.n) || p.ldc < p.n)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "matmul site %lld: leading dimension too small (lda %lld, ldb %lld, ldc %lld)", s,
                static_cast<long long>(p.lda), static_cast<long long>(p.ldb),
                static_cast<long long>(p.ldc));
  if (p.a_batch_stride < 0 || p.b_batch_stride < 0 || p.c_batch_stride < 0 ||
      (p.batch > 1 && p.c_batch_stride == 0))
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "matmul site %lld: batch strides must be >= 0 and C's non-zero", s);
  if (p.addend_kind < 0 || p.addend_kind > 2 || (p.addend_kind != 0 && !addend))
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul site %lld: bad addend (kind %d, ptr %p)", s,
                p.addend_kind, static_cast<const void *>(addend));
  if (residual && p.addend_kind == 2)
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "matmul site %lld: a residual does not combine with a full addend", s);
  bool known =
      p.post_op == KILN_POST_NONE || p.post_op == KILN_POST_RELU || p.post_op == KILN_POST_CLIP ||
      (level >= 7 && (p.post_op == KILN_POST_GELU_ERF || p.post_op == KILN_POST_GELU_TANH));
  if (!known)
    return fail(KILN_ERR_INVALID_ARGUMENT, "matmul site %lld: unknown post_op %d for %s", s,
                p.post_op, level >= 7 ? "kiln_shim_matmul_v2" : "kiln_shim_matmul_v1");
  return KILN_OK;
}

float applyPost(float v, const kiln_matmul_params_v1 &p) {
  if (p.post_op == KILN_POST_RELU) return v > 0.f ? v : 0.f;
  if (p.post_op == KILN_POST_CLIP) return std::min(std::max(v, p.clip_min), p.clip_max);
  if (p.post_op == KILN_POST_GELU_ERF) return 0.5f * v * (1.f + std::erf(v * 0.70710678f));
  if (p.post_op == KILN_POST_GELU_TANH)
    return 0.5f * v * (1.f + std::tanh(0.79788456f * (v + 0.044715f * v * v * v)));
  return v;
}

// C = post_op(beta * addend + residual) for the degenerate cases oneDNN does not take (k ==
// 0, or alpha == 0 where an output scale of 0 would also zero the bias).
void addendOnly(const float *addend, const float *residual, float *c,
                const kiln_matmul_params_v1 &p) {
  for (int64_t bi = 0; bi < p.batch; ++bi)
    for (int64_t i = 0; i < p.m; ++i) {
      float *row = c + bi * p.c_batch_stride + i * p.ldc;
      for (int64_t j = 0; j < p.n; ++j) {
        float v = 0.f;
        if (p.addend_kind == 1)
          v = p.beta * addend[j];
        else if (p.addend_kind == 2)
          v = p.beta * addend[bi * p.c_batch_stride + i * p.ldc + j];
        if (residual) v += residual[bi * p.c_batch_stride + i * p.ldc + j];
        row[j] = applyPost(v, p);
      }
    }
}

// Row-major A (m x k) or its transpose stored k x m, with leading dimension ld.
memory::desc matrixMd(int64_t batchDim, int64_t batchStride, int64_t rows, int64_t cols, int64_t ld,
                      bool trans, bool batched) {
  const auto f32 = memory::data_type::f32;
  memory::dims inner = trans ? memory::dims{1, ld} : memory::dims{ld, 1};
  if (!batched) return memory::desc({rows, cols}, f32, inner);
  // A broadcast (stride 0) batch is a batch dim of 1; its stride is then irrelevant.
  int64_t bs = batchDim == 1 ? std::max<int64_t>(1, ld * (trans ? cols : rows)) : batchStride;
  return memory::desc({batchDim, rows, cols}, f32, {bs, inner[0], inner[1]});
}

/// How the residual reaches oneDNN: not at all, as a binary-add post-op, or (when it is C
/// itself) as a sum post-op.
enum class Residual { None, Binary, InPlace };

CacheKey makeKey(int64_t site, const kiln_matmul_params_v1 &p, bool packB, Residual res) {
  CacheKey k;
  k.push(site);
  k.push(packB);
  k.push(static_cast<int64_t>(res));
  k.push(p.batch);
  k.push(p.m);
  k.push(p.n);
  k.push(p.k);
  k.push(p.a_batch_stride);
  k.push(p.b_batch_stride);
  k.push(p.c_batch_stride);
  k.push(p.lda);
  k.push(p.ldb);
  k.push(p.ldc);
  k.push(p.trans_a | (p.trans_b << 1) | (p.post_op << 2) | (p.addend_kind << 6));
  k.pushFloat(p.alpha);
  k.pushFloat(p.beta);
  k.pushFloat(p.clip_min);
  k.pushFloat(p.clip_max);
  return k;
}

/// B's descriptor for the primitive: its plain strides, or `any` (oneDNN picks a blocked
/// layout) when B is a constant shared by the whole batch.
memory::desc weightsMd(const kiln_matmul_params_v1 &p, bool batched, bool packB) {
  int64_t bB = p.b_batch_stride == 0 ? 1 : p.batch;
  if (!packB) return matrixMd(bB, p.b_batch_stride, p.k, p.n, p.ldb, p.trans_b, batched);
  const auto f32 = memory::data_type::f32;
  return batched ? memory::desc({1, p.k, p.n}, f32, memory::format_tag::any)
                 : memory::desc({p.k, p.n}, f32, memory::format_tag::any);
}

dnnl::algorithm eltwiseOf(int32_t post) {
  switch (post) {
  case KILN_POST_RELU:
    return dnnl::algorithm::eltwise_relu;
  case KILN_POST_CLIP:
    return dnnl::algorithm::eltwise_clip;
  case KILN_POST_GELU_ERF:
    return dnnl::algorithm::eltwise_gelu_erf;
  case KILN_POST_GELU_TANH:
    return dnnl::algorithm::eltwise_gelu_tanh;
  }
  return dnnl::algorithm::undef;
}

dnnl::matmul::primitive_desc makePd(dnnl::engine &eng, const kiln_matmul_params_v1 &p, bool batched,
                                    bool packB, Residual res) {
  int64_t aB = p.a_batch_stride == 0 ? 1 : p.batch;
  memory::desc aMd = matrixMd(aB, p.a_batch_stride, p.m, p.k, p.lda, p.trans_a, batched);
  memory::desc bMd = weightsMd(p, batched, packB);
  memory::desc cMd = matrixMd(p.batch, p.c_batch_stride, p.m, p.n, p.ldc, false, batched);

  // Post-ops run in order after alpha * A * B + bias: the addend or residual, then the
  // activation (checkArgs keeps a residual and a full addend apart).
  dnnl::post_ops ops;
  if (p.addend_kind == 2) ops.append_sum(p.beta);
  if (res == Residual::InPlace) ops.append_sum(1.f);
  if (res == Residual::Binary) ops.append_binary(dnnl::algorithm::binary_add, cMd);
  if (p.post_op != KILN_POST_NONE) {
    bool clip = p.post_op == KILN_POST_CLIP;
    ops.append_eltwise(1.f, eltwiseOf(p.post_op), clip ? p.clip_min : 0.f, clip ? p.clip_max : 0.f);
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (p.alpha != 1.f) attr.set_output_scales(0, {p.alpha});

  if (p.addend_kind == 1) {
    const auto f32 = memory::data_type::f32;
    memory::desc biasMd = batched ? memory::desc({1, 1, p.n}, f32, memory::format_tag::abc)
                                  : memory::desc({1, p.n}, f32, memory::format_tag::ab);
    return {dnnl::matmul::desc(aMd, bMd, biasMd, cMd), attr, eng};
  }
  return {dnnl::matmul::desc(aMd, bMd, cMd), attr, eng};
}

std::unique_ptr<MatmulEntry> build(DnnlCache &cache, const kiln_matmul_params_v1 &p, bool packB,
                                   Residual res) {
  dnnl::engine &eng = cache.engine();
  auto e = std::make_unique<MatmulEntry>();
  dnnl::matmul::primitive_desc pd;
  bool batched = p.batch > 1;
  try {
    pd = makePd(eng, p, batched, packB, res);
  } catch (const dnnl::error &) {
    if (!batched) throw;
    // Strides one 3-D descriptor cannot express: one 2-D primitive per matrix.
    batched = false;
    pd = makePd(eng, p, false, packB, res);
  }
  e->perMatrix = !batched && p.batch > 1;
  e->prim = dnnl::matmul(pd);
  e->a = memory(pd.src_desc(), eng, nullptr);
  e->b = memory(pd.weights_desc(), eng, nullptr);
  if (packB) {
    e->packedB = true;
    int64_t bB = p.b_batch_stride == 0 ? 1 : p.batch;
    e->bPlain = matrixMd(bB, p.b_batch_stride, p.k, p.n, p.ldb, p.trans_b, batched);
    e->bWant = pd.weights_desc();
  }
  e->c = memory(pd.dst_desc(), eng, nullptr);
  if (res == Residual::Binary) e->residual = memory(pd.dst_desc(), eng, nullptr);
  if (p.addend_kind == 1) {
    e->bias = memory(pd.bias_desc(), eng, nullptr);
    e->scaledBias.resize(p.n);
  }
  e->scratchpad = memory(pd.scratchpad_desc(), eng);
  return e;
}

// Copies a full addend into C (same ldc and batch stride) so the sum post-op adds it.
void copyAddend(const float *addend, float *c, const kiln_matmul_params_v1 &p) {
  if (addend == c) return;
  for (int64_t bi = 0; bi < p.batch; ++bi)
    for (int64_t i = 0; i < p.m; ++i) {
      int64_t off = bi * p.c_batch_stride + i * p.ldc;
      std::memmove(c + off, addend + off, sizeof(float) * p.n);
    }
}

} // namespace

/// A B shared by the whole batch, with A's and C's matrices back to back (row `m` of one
/// right after row `m - 1` of the previous), is one GEMM of batch x m rows. oneDNN 2.6 packs a
/// weight only for a 2-D primitive (a batched one with a broadcast B keeps B plain and
/// re-blocks it inside every call: BERT-base's FFN-up took 84 ms at batch 8 against ONNX
/// Runtime's 50), and the taller M runs closer to the GEMM's peak. The addend (ld = ldc) and
/// the residual are laid out like C, so they fold the same way.
kiln_matmul_params_v1 foldBatchIntoRows(const kiln_matmul_params_v1 &p) {
  if (p.batch <= 1 || p.b_batch_stride != 0 || p.trans_a || p.m == 0 ||
      p.a_batch_stride != p.m * p.lda || p.c_batch_stride != p.m * p.ldc)
    return p;
  kiln_matmul_params_v1 q = p;
  q.m = p.batch * p.m;
  q.batch = 1;
  q.a_batch_stride = q.m * p.lda;
  q.c_batch_stride = q.m * p.ldc;
  return q;
}

/// Columns per GEMM when a weight GEMM is better run as column blocks, else 0. oneDNN 2.6's
/// AVX2 matmul (CPUs without AVX-512, or ONEDNN_MAX_CPU_ISA=AVX2) falls to ~40% of peak at
/// small M once N passes 2304 (BERT's FFN-up, 128 x 3072 x 768: 40-43 GFLOP/s on Zen 4 at
/// 117 per core), while four GEMMs of N 768 writing column blocks of the same C run at 70-86;
/// at M 1024 both are at ~80 (bench/gemm, `split` row; docs/perf.md, "AVX2 paths"). AVX-512
/// oneDNN shows no such cliff, so its GEMMs stay whole. Where kiln's AVX2 GEMM runs it takes
/// these GEMMs first (ownGemmFits), so the blocks serve KILN_MATMUL_OWN_GEMM=0 runs.
/// KILN_MATMUL_COLUMN_BLOCKS=0 turns the blocks off (A/B runs).
int64_t matmulColumnBlock(const kiln_matmul_params_v1 &p, bool constantB) {
  constexpr int64_t kBlock = 768;
  static const bool wanted = [] { // oneDNN runs AVX2 and the blocks are not turned off
    const char *off = std::getenv("KILN_MATMUL_COLUMN_BLOCKS");
    if (off && std::strcmp(off, "0") == 0) return false;
    return dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core;
  }();
  if (!wanted || !constantB || p.batch != 1 || p.m > 256 || p.n <= 3 * kBlock) return 0;
  return kBlock;
}

/// One GEMM (no column blocking): the primitive and packed weights of this site and shape.
static int matmulOne(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                     const float *residual, float *c, const kiln_matmul_params_v1 &p) {
  if (p.k == 0 || p.alpha == 0.f) {
    addendOnly(addend, residual, c, p);
    return KILN_OK;
  }
  const Residual res = !residual       ? Residual::None
                       : residual == c ? Residual::InPlace
                                       : Residual::Binary;
  try {
    DnnlCache &cache = r.dnnl;
    // A constant B shared by the batch (a weight) is packed once, as convolutions are: at
    // small M oneDNN otherwise copies plain B into its blocks on every call.
    const bool packB = (p.batch == 1 || p.b_batch_stride == 0) && r.isConstant(b);
    CacheKey key = makeKey(site, p, packB, res);
    auto *e = static_cast<MatmulEntry *>(cache.find(key));
    if (!e) e = static_cast<MatmulEntry *>(cache.insert(key, build(cache, p, packB, res)));
    if (e->packedB) e->b = cache.weights(site, b, true, e->bPlain, e->bWant, e->bScratch);

    std::unordered_map<int, memory> &args = e->args;
    if (args.empty()) {
      args = {{DNNL_ARG_SRC, e->a},
              {DNNL_ARG_WEIGHTS, e->b},
              {DNNL_ARG_DST, e->c},
              {DNNL_ARG_SCRATCHPAD, e->scratchpad}};
      if (p.addend_kind == 1) args[DNNL_ARG_BIAS] = e->bias;
      if (res == Residual::Binary)
        args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = e->residual;
    }
    if (e->packedB) args.at(DNNL_ARG_WEIGHTS) = e->b;
    if (p.addend_kind == 1) {
      // oneDNN adds the bias before the output scale: pre-scale by beta / alpha.
      float scale = p.beta / p.alpha;
      const float *bias = addend;
      if (scale != 1.f) {
        for (int64_t j = 0; j < p.n; ++j)
          e->scaledBias[j] = scale * addend[j];
        bias = e->scaledBias.data();
      }
      e->bias.set_data_handle(const_cast<float *>(bias));
    }
    if (p.addend_kind == 2) copyAddend(addend, c, p);

    dnnl::stream &s = cache.stream();
    int64_t count = e->perMatrix ? p.batch : 1;
    for (int64_t bi = 0; bi < count; ++bi) {
      e->a.set_data_handle(const_cast<float *>(a + bi * p.a_batch_stride));
      if (!e->packedB) e->b.set_data_handle(const_cast<float *>(b + bi * p.b_batch_stride));
      e->c.set_data_handle(c + bi * p.c_batch_stride);
      if (res == Residual::Binary)
        e->residual.set_data_handle(const_cast<float *>(residual + bi * p.c_batch_stride));
      e->prim.execute(s, args);
    }
    s.wait();
    return KILN_OK;
  } catch (const dnnl::error &err) {
    return fail(KILN_ERR_INTERNAL, "matmul site %lld: oneDNN error: %s (status %d)",
                static_cast<long long>(site), err.what(), static_cast<int>(err.status));
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "matmul site %lld: out of memory",
                static_cast<long long>(site));
  }
}

/// level: the shim level of the entry point (1: kiln_shim_matmul_v1, 7: _v2).
int matmulForward(Runner &r, int64_t site, const float *a, const float *b, const float *addend,
                  const float *residual, float *c, const kiln_matmul_params_v1 &given, int level) {
  if (int st = checkArgs(site, a, b, addend, residual, c, given, level)) return st;
  const kiln_matmul_params_v1 p = foldBatchIntoRows(given);
  if (p.batch == 0 || p.m == 0 || p.n == 0) return KILN_OK;
  if (gemvFits(p, r.isConstant(b))) return gemvForward(r, site, a, b, addend, residual, c, p);
  if (ownGemmFits(p, r.isConstant(b), residual, c))
    return ownGemmForward(r, site, a, b, addend, residual, c, p);
  const int64_t block = p.k > 0 && p.alpha != 0.f ? matmulColumnBlock(p, r.isConstant(b)) : 0;
  if (block == 0) return matmulOne(r, site, a, b, addend, residual, c, p);
  // Column blocks [j, j + block) of B, C, a row addend (bias), a full addend and the residual
  // (both laid out like C); each block packs its own slice of the weights once.
  for (int64_t j = 0; j < p.n; j += block) {
    kiln_matmul_params_v1 q = p;
    q.n = std::min(block, p.n - j);
    const float *bj = p.trans_b ? b + j * p.ldb : b + j;
    const float *addendJ = p.addend_kind != 0 ? addend + j : addend;
    if (int st = matmulOne(r, site, a, bj, addendJ, residual ? residual + j : nullptr, c + j, q))
      return st;
  }
  return KILN_OK;
}

} // namespace kiln::rt

extern "C" KILN_RT_API int kiln_shim_matmul_v1(kiln_shim_ctx *ctx, int64_t site, const float *a,
                                               const float *b, const float *addend, float *c,
                                               const kiln_matmul_params_v1 *params) {
  if (!ctx || !params)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT, "kiln_shim_matmul_v1: NULL ctx or params");
  return kiln::rt::matmulForward(*static_cast<kiln::rt::Runner *>(ctx), site, a, b, addend, nullptr,
                                 c, *params, 1);
}

extern "C" KILN_RT_API int kiln_shim_matmul_v2(kiln_shim_ctx *ctx, int64_t site, const float *a,
                                               const float *b, const float *addend,
                                               const float *residual, float *c,
                                               const kiln_matmul_params_v1 *params) {
  if (!ctx || !params)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT, "kiln_shim_matmul_v2: NULL ctx or params");
  return kiln::rt::matmulForward(*static_cast<kiln::rt::Runner *>(ctx), site, a, b, addend,
                                 residual, c, *params, 7);
}
