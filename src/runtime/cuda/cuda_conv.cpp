// CudaLibraries::conv through cuDNN's legacy (v7-style) convolution API.
//
// Why the legacy API: it maps one to one onto kiln's conv + bias + residual + ReLU
// (cudnnConvolutionBiasActivationForward computes relu(conv(x) + z + bias)), its heuristic
// (cudnnGetConvolutionForwardAlgorithm_v7) is cheap and runs once per (site, shape), and it
// still ships (deprecated) in cuDNN 9. The graph API would need several backend descriptors
// and an engine-config search per plan for the same result; moving there is a later step.
//
// Execution: bias + ReLU present -> the fused call (residual as z). Otherwise conv
// (accumulating into y when residual aliases y), then cudnnAddTensor for residual and bias,
// then cudnnActivationForward in place. If the fused call answers NOT_SUPPORTED, the plan
// switches to the unfused sequence for good.
//
// Pads: cuDNN takes one pad per dim. Asymmetric pads are handled by copying x into a
// zero-filled buffer padded by pads_begin/pads_end at the front of the workspace
// (cudnnSetTensor + cudnnTransformTensor into a strided view), then convolving it with zero
// pads: exact for any pads, at the cost of one copy of x; refused if it does not fit.
// 1-D convs are 2-D with H = 1. CLIP is refused (KILN_ERR_UNSUPPORTED).
#include "cuda_libs_impl.h"

#include <kiln/model.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace kiln::rt::cuda {
namespace {

std::string dimsText(const int64_t *d, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i)
    s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

cudnnDataType_t dnnType(int32_t t) {
  return t == KILN_ELEM_F32   ? CUDNN_DATA_FLOAT
         : t == KILN_ELEM_F16 ? CUDNN_DATA_HALF
                              : CUDNN_DATA_BFLOAT16;
}

int checkArgs(int64_t site, const void *x, const int64_t *xDims, const void *w,
              const int64_t *wDims, const void *y, const int64_t *yDims,
              const kiln_conv_params_v1 &p, int32_t elemType, char *err, size_t errSize) {
  long long s = static_cast<long long>(site);
  if (!x || !xDims || !w || !wDims || !y || !yDims)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT, "cuda conv site %lld: NULL tensor or dims",
                s);
  if (elemType != KILN_ELEM_F32 && elemType != KILN_ELEM_F16 && elemType != KILN_ELEM_BF16)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda conv site %lld: elem_type %d (only F32, F16, BF16)", s, elemType);
  int r = p.spatial_rank;
  if (r < 1 || r > 3)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda conv site %lld: spatial_rank %d not in 1..3", s, r);
  int64_t g = p.groups;
  if (g < 1 || xDims[1] % g != 0 || wDims[0] % g != 0 || wDims[1] * g != xDims[1] ||
      yDims[1] != wDims[0] || yDims[0] != xDims[0])
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                "cuda conv site %lld: inconsistent dims (x %s, w %s, y %s, groups %lld)", s,
                dimsText(xDims, r + 2).c_str(), dimsText(wDims, r + 2).c_str(),
                dimsText(yDims, r + 2).c_str(), static_cast<long long>(g));
  for (int i = 0; i < r; ++i)
    if (p.strides[i] < 1 || p.dilations[i] < 1 || p.pads_begin[i] < 0 || p.pads_end[i] < 0)
      return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT,
                  "cuda conv site %lld: strides and dilations must be >= 1 and pads >= 0", s);
  // cuDNN's legacy descriptors take int dims and pads.
  for (int i = 0; i < r + 2; ++i)
    if (xDims[i] > INT32_MAX || wDims[i] > INT32_MAX || yDims[i] > INT32_MAX ||
        (i < r && (p.pads_begin[i] + p.pads_end[i] > INT32_MAX || p.strides[i] > INT32_MAX ||
                   p.dilations[i] > INT32_MAX)))
      return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                  "cuda conv site %lld: a dim, pad, stride or dilation exceeds cuDNN's int range",
                  s);
  if (p.post_op == KILN_POST_CLIP)
    return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                "cuda conv site %lld: post_op CLIP is not supported by cuDNN (not fused on CUDA)",
                s);
  if (p.post_op != KILN_POST_NONE && p.post_op != KILN_POST_RELU)
    return fail(err, errSize, KILN_ERR_INVALID_ARGUMENT, "cuda conv site %lld: unknown post_op %d",
                s, p.post_op);
  return KILN_OK;
}

// cuDNN 9 statuses are families (2000 BAD_PARAM_*, 3000 NOT_SUPPORTED_*, 4000 INTERNAL_*, 5000
// EXECUTION_FAILED_*): compare the family, not the exact code.
int statusClass(cudnnStatus_t st) {
  return static_cast<int>(st) / 1000;
}

#define DNN_TRY(call, what)                                                                        \
  do {                                                                                             \
    cudnnStatus_t st_ = (call);                                                                    \
    if (st_ != CUDNN_STATUS_SUCCESS) {                                                             \
      char last_[512] = "";                                                                        \
      cudnnGetLastErrorString(last_, sizeof last_);                                                \
      return fail(err, errSize, statusClass(st_) == 3 ? KILN_ERR_UNSUPPORTED : KILN_ERR_INTERNAL,  \
                  "cuda conv site %lld (x %s, w %s, groups %lld): %s: %s %s",                      \
                  static_cast<long long>(site), dimsText(xDims, p.spatial_rank + 2).c_str(),       \
                  dimsText(wDims, p.spatial_rank + 2).c_str(), static_cast<long long>(p.groups),   \
                  what, cudnnGetErrorString(st_), last_);                                          \
    }                                                                                              \
  } while (0)

// Packed NC[D]HW strides of dims (n of them).
void packedStrides(const int *dims, int n, int *strides) {
  strides[n - 1] = 1;
  for (int i = n - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * dims[i + 1];
}

// kiln dims (N, C, spatial...) as cuDNN dims: 1-D gets H = 1 in front of W.
int toDnnDims(const int64_t *d, int r, int *out) {
  out[0] = static_cast<int>(d[0]);
  out[1] = static_cast<int>(d[1]);
  if (r == 1) {
    out[2] = 1;
    out[3] = static_cast<int>(d[2]);
    return 4;
  }
  for (int i = 0; i < r; ++i)
    out[2 + i] = static_cast<int>(d[2 + i]);
  return r + 2;
}

} // namespace

ConvPlan::~ConvPlan() {
  if (padD) cudnnDestroyTensorDescriptor(padD);
  if (padInteriorD) cudnnDestroyTensorDescriptor(padInteriorD);
  if (reluD) cudnnDestroyActivationDescriptor(reluD);
  if (convD) cudnnDestroyConvolutionDescriptor(convD);
  if (wD) cudnnDestroyFilterDescriptor(wD);
  if (biasD) cudnnDestroyTensorDescriptor(biasD);
  if (yD) cudnnDestroyTensorDescriptor(yD);
  if (xD) cudnnDestroyTensorDescriptor(xD);
}

int CudaLibrariesImpl::buildConvPlan(ConvPlan &plan, const int64_t *xDims, const int64_t *wDims,
                                     const int64_t *yDims, const kiln_conv_params_v1 &p,
                                     int32_t elemType, uint32_t flags, bool hasBias,
                                     bool hasResidual, size_t wsBytes, char *err, size_t errSize,
                                     int64_t site) {
  const int r = p.spatial_rank;
  const cudnnDataType_t dt = dnnType(elemType);
  plan.elemSize = elemType == KILN_ELEM_F32 ? 4 : 2;
  int xd[5], wd[5], yd[5], xs[5], ys[5];
  const int nd = toDnnDims(xDims, r, xd);
  toDnnDims(wDims, r, wd);
  toDnnDims(yDims, r, yd);
  packedStrides(xd, nd, xs);
  packedStrides(yd, nd, ys);

  // Spatial parameters in cuDNN order (1-D: a dummy H of stride/dilation 1, pad 0).
  const int ns = nd - 2, off = r == 1 ? 1 : 0;
  int pad[3] = {0, 0, 0}, stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1};
  bool asym = false;
  for (int i = 0; i < r; ++i) {
    pad[off + i] = static_cast<int>(p.pads_begin[i]);
    stride[off + i] = static_cast<int>(p.strides[i]);
    dil[off + i] = static_cast<int>(p.dilations[i]);
    asym |= p.pads_begin[i] != p.pads_end[i];
  }

  DNN_TRY(cudnnCreateTensorDescriptor(&plan.xD), "tensor descriptor");
  DNN_TRY(cudnnSetTensorNdDescriptor(plan.xD, dt, nd, xd, xs), "x descriptor");
  DNN_TRY(cudnnCreateTensorDescriptor(&plan.yD), "tensor descriptor");
  DNN_TRY(cudnnSetTensorNdDescriptor(plan.yD, dt, nd, yd, ys), "y descriptor");
  DNN_TRY(cudnnCreateFilterDescriptor(&plan.wD), "filter descriptor");
  DNN_TRY(cudnnSetFilterNdDescriptor(plan.wD, dt, CUDNN_TENSOR_NCHW, nd, wd), "w descriptor");

  size_t avail = wsBytes;
  if (asym) {
    int pd[5], ps[5];
    std::memcpy(pd, xd, sizeof pd);
    for (int i = 0; i < r; ++i)
      pd[2 + off + i] += static_cast<int>(p.pads_begin[i] + p.pads_end[i]);
    packedStrides(pd, nd, ps);
    plan.padOffsetElems = 0;
    for (int i = 0; i < r; ++i)
      plan.padOffsetElems += p.pads_begin[i] * ps[2 + off + i];
    size_t elems = static_cast<size_t>(ps[0]) * static_cast<size_t>(pd[0]);
    plan.padBytes = (elems * plan.elemSize + 255) & ~size_t(255);
    if (plan.padBytes > wsBytes)
      return fail(err, errSize, KILN_ERR_UNSUPPORTED,
                  "cuda conv site %lld: asymmetric pads (begin %s, end %s) need a padded copy of x "
                  "(%zu bytes) larger than the workspace (%zu)",
                  static_cast<long long>(site), dimsText(p.pads_begin, r).c_str(),
                  dimsText(p.pads_end, r).c_str(), plan.padBytes, wsBytes);
    avail -= plan.padBytes;
    DNN_TRY(cudnnCreateTensorDescriptor(&plan.padD), "tensor descriptor");
    DNN_TRY(cudnnSetTensorNdDescriptor(plan.padD, dt, nd, pd, ps), "padded x descriptor");
    DNN_TRY(cudnnCreateTensorDescriptor(&plan.padInteriorD), "tensor descriptor");
    DNN_TRY(cudnnSetTensorNdDescriptor(plan.padInteriorD, dt, nd, xd, ps), "padded view");
    for (int i = 0; i < 3; ++i)
      pad[i] = 0;
  }

  DNN_TRY(cudnnCreateConvolutionDescriptor(&plan.convD), "conv descriptor");
  DNN_TRY(cudnnSetConvolutionNdDescriptor(plan.convD, ns, pad, stride, dil, CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT),
          "conv descriptor");
  DNN_TRY(cudnnSetConvolutionGroupCount(plan.convD, static_cast<int>(p.groups)), "group count");
  // FMA math keeps fp32 exact (no TF32) unless the model allows TF32; F16/BF16 use tensor
  // cores with fp32 accumulation.
  bool tf32 = elemType == KILN_ELEM_F32 && (flags & KILN_CUDA_ALLOW_TF32);
  cudnnMathType_t math = elemType != KILN_ELEM_F32 ? CUDNN_TENSOR_OP_MATH
                         : tf32                    ? CUDNN_DEFAULT_MATH
                                                   : CUDNN_FMA_MATH;
  DNN_TRY(cudnnSetConvolutionMathType(plan.convD, math), "math type");

  cudnnTensorDescriptor_t convX = asym ? plan.padD : plan.xD;
  int od[5];
  DNN_TRY(cudnnGetConvolutionNdForwardOutputDim(plan.convD, convX, plan.wD, nd, od), "output dims");
  if (std::memcmp(od, yd, sizeof(int) * static_cast<size_t>(nd)) != 0)
    return fail(err, errSize, KILN_ERR_SHAPE_MISMATCH,
                "cuda conv site %lld: y dims %s differ from the convolution's output",
                static_cast<long long>(site), dimsText(yDims, r + 2).c_str());

  if (hasBias) {
    int bd[5] = {1, yd[1], 1, 1, 1}, bs[5];
    packedStrides(bd, nd, bs);
    DNN_TRY(cudnnCreateTensorDescriptor(&plan.biasD), "tensor descriptor");
    DNN_TRY(cudnnSetTensorNdDescriptor(plan.biasD, dt, nd, bd, bs), "bias descriptor");
  }
  if (p.post_op == KILN_POST_RELU) {
    DNN_TRY(cudnnCreateActivationDescriptor(&plan.reluD), "activation descriptor");
    DNN_TRY(
        cudnnSetActivationDescriptor(plan.reluD, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0),
        "activation descriptor");
  }
  plan.fused = hasBias && p.post_op == KILN_POST_RELU;
  (void)hasResidual;

  // Heuristic only (no cudnnFind): the best-ranked algorithm that fits the workspace.
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int found = 0;
  DNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(dnn, convX, plan.wD, plan.convD, plan.yD,
                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf),
          "algorithm heuristic");
  for (int i = 0; i < found; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > avail) continue;
    if (elemType == KILN_ELEM_F32 && !tf32 && perf[i].mathType != CUDNN_FMA_MATH &&
        perf[i].mathType != CUDNN_DEFAULT_MATH)
      continue;
    plan.algo = perf[i].algo;
    plan.algoBytes = perf[i].memory;
    return KILN_OK;
  }
  return fail(err, errSize, KILN_ERR_UNSUPPORTED,
              "cuda conv site %lld (x %s, w %s, groups %lld): no cuDNN algorithm fits the "
              "workspace (%zu bytes; %d candidates)",
              static_cast<long long>(site), dimsText(xDims, r + 2).c_str(),
              dimsText(wDims, r + 2).c_str(), static_cast<long long>(p.groups), avail, found);
}

int CudaLibrariesImpl::conv(void *stream, Workspace ws, int64_t site, const void *x,
                            const int64_t *xDims, const void *w, const int64_t *wDims,
                            const void *bias, const void *residual, void *y, const int64_t *yDims,
                            const kiln_conv_params_v1 &p, int32_t elemType, uint32_t flags,
                            char *err, size_t errSize) {
  if (int rc = checkArgs(site, x, xDims, w, wDims, y, yDims, p, elemType, err, errSize)) return rc;
  const int r = p.spatial_rank;
  for (int i = 0; i < r + 2; ++i)
    if (xDims[i] == 0 || yDims[i] == 0) return KILN_OK; // empty tensor: nothing to compute
  const bool resInPlace = residual && residual == y;

  PlanKey key;
  key.push(site);
  key.push(r | (bias != nullptr) << 2 | (residual != nullptr) << 3 | resInPlace << 4 |
           p.post_op << 5 | elemType << 8 | static_cast<int>(flags & KILN_CUDA_ALLOW_TF32) << 12);
  key.push(p.groups);
  key.push(static_cast<int64_t>(ws.bytes));
  for (int i = 0; i < r + 2; ++i) {
    key.push(xDims[i]);
    key.push(wDims[i]);
    key.push(yDims[i]);
  }
  for (int i = 0; i < r; ++i) {
    key.push(p.strides[i]);
    key.push(p.dilations[i]);
    key.push(p.pads_begin[i]);
    key.push(p.pads_end[i]);
  }
  auto it = convPlans_.find(key);
  if (it == convPlans_.end()) {
    auto plan = std::make_unique<ConvPlan>();
    if (int rc = buildConvPlan(*plan, xDims, wDims, yDims, p, elemType, flags, bias != nullptr,
                               residual != nullptr, ws.bytes, err, errSize, site))
      return rc;
    it = convPlans_.emplace(key, std::move(plan)).first;
  }
  ConvPlan &plan = *it->second;

  if (stream != dnnStream_) {
    DNN_TRY(cudnnSetStream(dnn, static_cast<cudaStream_t>(stream)), "cudnnSetStream");
    dnnStream_ = stream;
  }
  const float one = 1.f, zero = 0.f;
  char *wsPtr = static_cast<char *>(ws.ptr);
  size_t wsBytes = ws.bytes;
  const void *convIn = x;
  cudnnTensorDescriptor_t convInD = plan.xD;
  if (plan.padD) {
    const double zeroBits = 0; // all-zero bytes: 0 whichever type cuDNN reads the value as
    DNN_TRY(cudnnSetTensor(dnn, plan.padD, wsPtr, &zeroBits), "zeroing the padded x");
    DNN_TRY(cudnnTransformTensor(dnn, &one, plan.xD, x, &zero, plan.padInteriorD,
                                 wsPtr + plan.padOffsetElems * static_cast<int64_t>(plan.elemSize)),
            "copying x into the padded buffer");
    convIn = wsPtr;
    convInD = plan.padD;
    wsPtr += plan.padBytes;
    wsBytes -= plan.padBytes;
  }

  if (plan.fused) {
    // z = residual (may alias y); without one, z = y scaled by 0.
    const float alpha2 = residual ? 1.f : 0.f;
    const void *z = residual ? residual : y;
    cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        dnn, &one, convInD, convIn, plan.wD, w, plan.convD, plan.algo, wsPtr, wsBytes, &alpha2,
        plan.yD, z, plan.biasD, bias, plan.reluD, plan.yD, y);
    if (st == CUDNN_STATUS_SUCCESS) return KILN_OK;
    if (st != CUDNN_STATUS_NOT_SUPPORTED) DNN_TRY(st, "cudnnConvolutionBiasActivationForward");
    plan.fused = false; // this configuration has no fused kernel: unfused from now on
  }

  const float beta = resInPlace ? 1.f : 0.f; // y already holds the residual
  DNN_TRY(cudnnConvolutionForward(dnn, &one, convInD, convIn, plan.wD, w, plan.convD, plan.algo,
                                  wsPtr, wsBytes, &beta, plan.yD, y),
          "cudnnConvolutionForward");
  if (residual && !resInPlace)
    DNN_TRY(cudnnAddTensor(dnn, &one, plan.yD, residual, &one, plan.yD, y), "adding the residual");
  if (bias) DNN_TRY(cudnnAddTensor(dnn, &one, plan.biasD, bias, &one, plan.yD, y), "adding bias");
  if (plan.reluD)
    DNN_TRY(cudnnActivationForward(dnn, plan.reluD, &one, plan.yD, y, &zero, plan.yD, y), "relu");
  return KILN_OK;
}

} // namespace kiln::rt::cuda
