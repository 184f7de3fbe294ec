// CudaLibraries::matmul through cuBLASLt.
//
// kiln matrices are row-major; cuBLAS is column-major. A row-major m x n C is a column-major
// n x m C^T = B^T A^T, so cuBLAS's A is kiln's B and vice versa, with the same leading
// dimensions and trans flags. Addends: a row vector (n) is cuBLAS's per-row bias (D has n
// rows), through the BIAS / RELU_BIAS epilogue; with beta != 1 the bias is first scaled into
// the workspace by cublasLtMatrixTransform (no custom kernel, no allocation). A full addend
// is cuBLAS's C input (same ld and batch stride as D) with beta; so is a residual (level 7),
// with beta 1. ReLU is the RELU epilogue and GELU_TANH the GELU epilogue, which cuBLASLt
// applies after alpha*AB + beta*C + bias; cuBLASLt's GELU is the tanh approximation (PyTorch
// relies on the same, pytorch/pytorch#104061), so GELU_ERF is refused like CLIP, which has no
// epilogue either (KILN_ERR_UNSUPPORTED): the compiler fuses neither into CUDA matmuls.
#include "cuda_libs_impl.h"

#include <kiln/model.h>

#include <cstdint>

namespace kiln::rt::cuda {
namespace {

// How the addend reaches cuBLASLt: a row bias as the BIAS epilogue's vector (scaled first
// when beta != 1), a full addend as its C input (kFull). A residual is C too (checkArgs keeps
// it apart from a full addend).
enum AddendMode { kNone = 0, kBias = 1, kScaledBias = 2, kFull = 3 };

size_t elemSize(int32_t t) {
  return t == KILN_ELEM_F32 ? 4 : 2;
}

cudaDataType_t dataType(int32_t t) {
  return t == KILN_ELEM_F32 ? CUDA_R_32F : t == KILN_ELEM_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

const char *elemName(int32_t t) {
  return t == KILN_ELEM_F32 ? "f32" : t == KILN_ELEM_F16 ? "f16" : "bf16";
}

int checkArgs(int64_t site, const void *a, const void *b, const void *addend, const void *residual,
              const void *c, const kiln_cuda_matmul_params_v1 &cp, char *err, size_t errSize) {
  const kiln_matmul_params_v1 &p = cp.mm;
  long long s = static_cast<long long>(site);
  for (int32_t r : cp.reserved)
    if (r != 0)
      return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                  "cuda matmul site %lld: reserved params must be zero", s);
  if (cp.elem_type != KILN_ELEM_F32 && cp.elem_type != KILN_ELEM_F16 &&
      cp.elem_type != KILN_ELEM_BF16)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda matmul site %lld: elem_type %d (only F32, F16, BF16)", s, cp.elem_type);
  if (p.batch < 0 || p.m < 0 || p.n < 0 || p.k < 0)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: negative batch/m/n/k", s);
  bool empty = p.batch == 0 || p.m == 0 || p.n == 0;
  if (!empty && (!c || !a || !b))
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT, "cuda matmul site %lld: NULL a, b or c",
                s);
  if (p.lda < (p.trans_a ? p.m : p.k) || p.ldb < (p.trans_b ? p.k : p.n) || p.ldc < p.n)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: leading dimension too small (lda %lld, ldb %lld, ldc %lld)",
                s, static_cast<long long>(p.lda), static_cast<long long>(p.ldb),
                static_cast<long long>(p.ldc));
  if (p.a_batch_stride < 0 || p.b_batch_stride < 0 || p.c_batch_stride < 0 ||
      (p.batch > 1 && p.c_batch_stride == 0))
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: batch strides must be >= 0 and C's non-zero", s);
  if (p.addend_kind < 0 || p.addend_kind > 2 || (p.addend_kind != 0 && !addend))
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: bad addend (kind %d, ptr %p)", s, p.addend_kind, addend);
  if (p.post_op == KILN_POST_CLIP)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda matmul site %lld: post_op CLIP has no cuBLASLt epilogue (not fused on CUDA)",
                s);
  if (p.post_op == KILN_POST_GELU_ERF)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda matmul site %lld: post_op GELU_ERF has no cuBLASLt epilogue (its GELU is the "
                "tanh approximation; not fused on CUDA)",
                s);
  if (p.post_op != KILN_POST_NONE && p.post_op != KILN_POST_RELU &&
      p.post_op != KILN_POST_GELU_TANH)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: unknown post_op %d", s, p.post_op);
  if (residual && p.addend_kind == 2)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda matmul site %lld: a residual does not combine with a full addend", s);
  if (p.batch > INT32_MAX) // cuBLASLt's batch count is an int32
    return fail(err, errSize, KILN_ERR_UNSUPPORTED, "cuda matmul site %lld: batch %lld > 2^31-1", s,
                static_cast<long long>(p.batch));
  if (!empty && p.k == 0)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda matmul site %lld: k == 0 (an addend-only result; fold it at compile time)",
                s);
  return KILN_OK;
}

#define LT_TRY(call, what)                                                                         \
  do {                                                                                             \
    cublasStatus_t st_ = (call);                                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                              \
      return fail(err, errSize,                                                                    \
                  st_ == CUBLAS_STATUS_NOT_SUPPORTED ? KILN_ERR_UNSUPPORTED : KILN_ERR_INTERNAL,   \
                  "cuda matmul site %lld (batch %lld, m %lld, n %lld, k %lld, %s): %s: %s (%s)",   \
                  static_cast<long long>(site), static_cast<long long>(p.mm.batch),                \
                  static_cast<long long>(p.mm.m), static_cast<long long>(p.mm.n),                  \
                  static_cast<long long>(p.mm.k), elemName(p.elem_type), what,                     \
                  cublasLtGetStatusName(st_), cublasLtGetStatusString(st_));                       \
  } while (0)

template <class T>
cublasStatus_t setLayout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, T v) {
  return cublasLtMatrixLayoutSetAttribute(l, attr, &v, sizeof v);
}

template <class T>
cublasStatus_t setDesc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, T v) {
  return cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof v);
}

} // namespace

MatmulPlan::~MatmulPlan() {
  if (biasL) cublasLtMatrixLayoutDestroy(biasL);
  if (scale) cublasLtMatrixTransformDescDestroy(scale);
  if (cL) cublasLtMatrixLayoutDestroy(cL);
  if (bL) cublasLtMatrixLayoutDestroy(bL);
  if (aL) cublasLtMatrixLayoutDestroy(aL);
  if (desc) cublasLtMatmulDescDestroy(desc);
}

int CudaLibrariesImpl::buildMatmulPlan(MatmulPlan &plan, const kiln_cuda_matmul_params_v1 &p,
                                       int addendMode, size_t wsAvail, const uint32_t align[4],
                                       bool perMatrix, char *err, size_t errSize, int64_t site) {
  const kiln_matmul_params_v1 &m = p.mm;
  cudaDataType_t dt = dataType(p.elem_type);
  bool tf32 = p.elem_type == KILN_ELEM_F32 && (p.flags & KILN_CUDA_ALLOW_TF32);
  // Plain 32F compute matches PyTorch with TF32 off; F16/BF16 accumulate in fp32.
  cublasComputeType_t ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  LT_TRY(cublasLtMatmulDescCreate(&plan.desc, ct, CUDA_R_32F), "matmul desc");
  LT_TRY(setDesc<int32_t>(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                          m.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N),
         "transa");
  LT_TRY(setDesc<int32_t>(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                          m.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N),
         "transb");
  plan.bias = addendMode == kBias || addendMode == kScaledBias;
  cublasLtEpilogue_t epi = plan.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  if (m.post_op == KILN_POST_RELU)
    epi = plan.bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
  if (m.post_op == KILN_POST_GELU_TANH)
    epi = plan.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  LT_TRY(setDesc<int32_t>(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, epi), "epilogue");
  if (plan.bias) // one bias for every matrix of the batch
    LT_TRY(setDesc<int64_t>(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, 0), "bias stride");

  // cuBLAS A = kiln B (stored k x n, or n x k when transposed), cuBLAS B = kiln A.
  uint64_t aRows = m.trans_b ? m.k : m.n, aCols = m.trans_b ? m.n : m.k;
  uint64_t bRows = m.trans_a ? m.m : m.k, bCols = m.trans_a ? m.k : m.m;
  LT_TRY(cublasLtMatrixLayoutCreate(&plan.aL, dt, aRows, aCols, m.ldb), "layout of B");
  LT_TRY(cublasLtMatrixLayoutCreate(&plan.bL, dt, bRows, bCols, m.lda), "layout of A");
  LT_TRY(cublasLtMatrixLayoutCreate(&plan.cL, dt, m.n, m.m, m.ldc), "layout of C");
  plan.perMatrix = perMatrix && m.batch > 1;
  if (m.batch > 1 && !plan.perMatrix) {
    int32_t count = static_cast<int32_t>(m.batch);
    LT_TRY(setLayout(plan.aL, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, count), "batch count");
    LT_TRY(setLayout(plan.bL, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, count), "batch count");
    LT_TRY(setLayout(plan.cL, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, count), "batch count");
    // A stride of 0 broadcasts that operand over the batch.
    LT_TRY(setLayout(plan.aL, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, m.b_batch_stride),
           "batch stride of B");
    LT_TRY(setLayout(plan.bL, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, m.a_batch_stride),
           "batch stride of A");
    LT_TRY(setLayout(plan.cL, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, m.c_batch_stride),
           "batch stride of C");
  }
  if (addendMode == kScaledBias) {
    LT_TRY(cublasLtMatrixTransformDescCreate(&plan.scale, CUDA_R_32F), "transform desc");
    LT_TRY(cublasLtMatrixLayoutCreate(&plan.biasL, dt, m.n, 1, m.n), "layout of bias");
    plan.biasBytes = (static_cast<size_t>(m.n) * elemSize(p.elem_type) + 255) & ~size_t(255);
    if (plan.biasBytes > wsAvail)
      return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                  "cuda matmul site %lld: scaled bias (%zu bytes) exceeds the workspace (%zu)",
                  static_cast<long long>(site), plan.biasBytes, wsAvail);
    wsAvail -= plan.biasBytes;
  }

  cublasLtMatmulPreference_t pref = nullptr;
  LT_TRY(cublasLtMatmulPreferenceCreate(&pref), "preference");
  // Tell the heuristic the real pointer alignments so it never picks a kernel needing more.
  const cublasLtMatmulPreferenceAttributes_t alignAttr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsAvail, sizeof wsAvail);
  for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; ++i)
    st = cublasLtMatmulPreferenceSetAttribute(pref, alignAttr[i], &align[i], sizeof align[i]);
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulAlgoGetHeuristic(lt, plan.desc, plan.aL, plan.bL, plan.cL, plan.cL, pref, 1,
                                        &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  LT_TRY(st, "heuristic");
  if (found < 1 || res.state != CUBLAS_STATUS_SUCCESS)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda matmul site %lld (batch %lld, m %lld, n %lld, k %lld, %s, workspace %zu): "
                "cuBLASLt has no algorithm",
                static_cast<long long>(site), static_cast<long long>(m.batch),
                static_cast<long long>(m.m), static_cast<long long>(m.n),
                static_cast<long long>(m.k), elemName(p.elem_type), wsAvail);
  plan.algo = res.algo;
  return KILN_OK;
}

int CudaLibrariesImpl::matmul(void *stream, Workspace ws, int64_t site, const void *a,
                              const void *b, const void *addend, const void *residual, void *c,
                              const kiln_cuda_matmul_params_v1 &p, char *err, size_t errSize) {
  if (int rc = checkArgs(site, a, b, addend, residual, c, p, err, errSize)) return rc;
  const kiln_matmul_params_v1 &m = p.mm;
  if (m.batch == 0 || m.m == 0 || m.n == 0) return KILN_OK;

  int mode = kNone;
  if (m.addend_kind == 1 && m.beta != 0.f) mode = m.beta == 1.f ? kBias : kScaledBias;
  if (m.addend_kind == 2 && m.beta != 0.f) mode = kFull;
  // C input of cuBLASLt: the full addend (scaled by beta) or the residual (beta 1); else D.
  const void *cIn = mode == kFull ? addend : residual ? residual : c;
  const float betaC = mode == kFull ? m.beta : residual ? 1.f : 0.f;
  const int64_t es = static_cast<int64_t>(elemSize(p.elem_type));
  const int64_t cStride = m.batch > 1 ? m.c_batch_stride * es : 0;
  uint32_t align[4] = {alignmentOf(b, m.batch > 1 ? m.b_batch_stride * es : 0),
                       alignmentOf(a, m.batch > 1 ? m.a_batch_stride * es : 0),
                       alignmentOf(cIn, cStride), alignmentOf(c, cStride)};

  PlanKey key;
  for (int64_t v : {site, m.batch, m.m, m.n, m.k, m.a_batch_stride, m.b_batch_stride,
                    m.c_batch_stride, m.lda, m.ldb, m.ldc, static_cast<int64_t>(ws.bytes)})
    key.push(v);
  key.push(m.trans_a | m.trans_b << 1 | m.post_op << 2 | mode << 5 | p.elem_type << 8 |
           static_cast<int64_t>(p.flags & KILN_CUDA_ALLOW_TF32) << 12 |
           static_cast<int64_t>(residual != nullptr) << 13);
  key.push(static_cast<int64_t>(align[0]) | static_cast<int64_t>(align[1]) << 16 |
           static_cast<int64_t>(align[2]) << 32 | static_cast<int64_t>(align[3]) << 48);

  auto it = mmPlans_.find(key);
  if (it == mmPlans_.end()) {
    auto plan = std::make_unique<MatmulPlan>();
    int rc = buildMatmulPlan(*plan, p, mode, ws.bytes, align, false, err, errSize, site);
    if (rc != KILN_OK && m.batch > 1) {
      // Strides one batched layout cannot take (e.g. a broadcast operand that the heuristic
      // rejects): one matmul per matrix, same plan otherwise.
      plan = std::make_unique<MatmulPlan>();
      rc = buildMatmulPlan(*plan, p, mode, ws.bytes, align, true, err, errSize, site);
    }
    if (rc) return rc;
    it = mmPlans_.emplace(key, std::move(plan)).first;
  }
  MatmulPlan &plan = *it->second;

  auto s = static_cast<cudaStream_t>(stream);
  char *wsPtr = static_cast<char *>(ws.ptr);
  size_t wsBytes = ws.bytes;
  const float alpha = m.alpha, zero = 0.f;
  const float beta = betaC;
  if (plan.bias) {
    const void *biasPtr = addend;
    if (mode == kScaledBias) {
      LT_TRY(cublasLtMatrixTransform(lt, plan.scale, &m.beta, addend, plan.biasL, &zero, nullptr,
                                     nullptr, wsPtr, plan.biasL, s),
             "scaling the bias");
      biasPtr = wsPtr;
      wsPtr += plan.biasBytes;
      wsBytes -= plan.biasBytes;
    }
    LT_TRY(setDesc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, biasPtr), "bias pointer");
  }
  int64_t count = plan.perMatrix ? m.batch : 1;
  for (int64_t bi = 0; bi < count; ++bi) {
    const char *aP = static_cast<const char *>(a) + bi * m.a_batch_stride * es;
    const char *bP = static_cast<const char *>(b) + bi * m.b_batch_stride * es;
    const char *cP = static_cast<const char *>(cIn) + bi * m.c_batch_stride * es;
    char *dP = static_cast<char *>(c) + bi * m.c_batch_stride * es;
    LT_TRY(cublasLtMatmul(lt, plan.desc, &alpha, bP, plan.aL, aP, plan.bL, &beta, cP, plan.cL, dP,
                          plan.cL, &plan.algo, wsPtr, wsBytes, s),
           "cublasLtMatmul");
  }
  return KILN_OK;
}

} // namespace kiln::rt::cuda
