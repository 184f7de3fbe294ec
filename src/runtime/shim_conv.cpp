// kiln_shim_conv_v1: convolution through oneDNN, primitives cached per runner.
//
// Layout choice (ConvLayout): Blocked. Measured with tests/runtime/conv_layout_bench.cpp
// (N=1, 56x56, pad k/2, bias + relu, 2 threads, oneDNN 2.6, best of 50, weights cached;
// times include the src/dst reorders). The dev machine turned out to have AVX-512:
//                          plain nchw              any + reorders
//   3x3 64->64   avx512    2.40 ms (96 GFLOP/s)    0.88 ms (263 GFLOP/s)   brgconv vs gemm:jit
//   1x1 256->64  avx512    1.07 ms (96 GFLOP/s)    0.58 ms (177 GFLOP/s)   brgconv_1x1
//   3x3 64->64   AVX2 cap  3.12 ms (74 GFLOP/s)    1.47 ms (157 GFLOP/s)   (ONEDNN_MAX_CPU_ISA)
//   1x1 256->64  AVX2 cap  1.33 ms (77 GFLOP/s)    0.86 ms (120 GFLOP/s)
// Plain src/dst makes oneDNN fall back to im2col + gemm; blocked is 1.6-2.7x faster even
// paying two reorders per call. (Keeping activations blocked between convs is a later pass.)
// Weights always use format_tag::any; the reordered copy is cached per (site, pointer) when
// the pointer lies in the container's constants.
#include "shim_conv.h"

#include "conv_direct.h"
#include "conv_winograd.h"
#include "error.h"
#include "shim_dwconv.h"

#include <kiln/model.h>
#include <kiln/runtime.h>

#include <cstring>

namespace kiln::rt {
namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

struct ConvEntry : CacheEntry {
  dnnl::convolution_forward prim;
  memory::desc wPlain, wWant;
  memory srcUser, dstUser, resUser, bias, scratchpad, wScratch;
  memory srcBuf, dstBuf; // blocked copies when the primitive wants another layout
  bool srcReorder = false, dstReorder = false;
  bool separate = false; // residual (+ eltwise) added by addResidual after the conv
  dnnl::binary addResidual;
  memory resCopy;
  dnnl::reorder srcR, dstR, resR;
  size_t dstBytes = 0;
};

dnnl::algorithm eltwiseAlg(int postOp) {
  return postOp == KILN_POST_RELU ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_clip;
}

// relu's alpha is its negative slope (0); clip's alpha/beta are its bounds.
float eltwiseAlpha(const kiln_conv_params_v1 &p) {
  return p.post_op == KILN_POST_CLIP ? p.clip_min : 0.f;
}
float eltwiseBeta(const kiln_conv_params_v1 &p) {
  return p.post_op == KILN_POST_CLIP ? p.clip_max : 0.f;
}

tag plainData(int rank) {
  return rank == 1 ? tag::ncw : rank == 2 ? tag::nchw : tag::ncdhw;
}
tag channelsLastData(int rank) {
  return rank == 1 ? tag::nwc : rank == 2 ? tag::nhwc : tag::ndhwc;
}
tag plainWeights(int rank, bool grouped) {
  if (grouped) return rank == 1 ? tag::goiw : rank == 2 ? tag::goihw : tag::goidhw;
  return rank == 1 ? tag::oiw : rank == 2 ? tag::oihw : tag::oidhw;
}

int checkArgs(int64_t site, const float *x, const int64_t *xDims, const float *w,
              const int64_t *wDims, float *y, const int64_t *yDims, const kiln_conv_params_v1 &p) {
  if (!x || !xDims || !w || !wDims || !y || !yDims)
    return fail(KILN_ERR_INVALID_ARGUMENT, "conv site %lld: NULL tensor or dims",
                static_cast<long long>(site));
  int r = p.spatial_rank;
  if (r < 1 || r > 3)
    return fail(KILN_ERR_INVALID_ARGUMENT, "conv site %lld: spatial_rank %d not in 1..3",
                static_cast<long long>(site), r);
  int64_t g = p.groups;
  if (g < 1 || xDims[1] % g != 0 || wDims[0] % g != 0 || wDims[1] * g != xDims[1] ||
      yDims[1] != wDims[0] || yDims[0] != xDims[0])
    return fail(KILN_ERR_INVALID_ARGUMENT,
                "conv site %lld: inconsistent dims (x C=%lld, w O=%lld C/g=%lld, y N=%lld "
                "O=%lld, groups %lld)",
                static_cast<long long>(site), static_cast<long long>(xDims[1]),
                static_cast<long long>(wDims[0]), static_cast<long long>(wDims[1]),
                static_cast<long long>(yDims[0]), static_cast<long long>(yDims[1]),
                static_cast<long long>(g));
  for (int i = 0; i < r; ++i)
    if (p.strides[i] < 1 || p.dilations[i] < 1 || p.pads_begin[i] < 0 || p.pads_end[i] < 0)
      return fail(KILN_ERR_INVALID_ARGUMENT,
                  "conv site %lld: strides and dilations must be >= 1 and pads >= 0",
                  static_cast<long long>(site));
  if (p.post_op != KILN_POST_NONE && p.post_op != KILN_POST_RELU && p.post_op != KILN_POST_CLIP)
    return fail(KILN_ERR_INVALID_ARGUMENT, "conv site %lld: unknown post_op %d",
                static_cast<long long>(site), p.post_op);
  return KILN_OK;
}

CacheKey makeKey(int64_t site, const int64_t *xDims, const int64_t *wDims, const int64_t *yDims,
                 bool hasBias, bool hasResidual, const kiln_conv_params_v1 &p, ConvLayout layout) {
  int r = p.spatial_rank;
  CacheKey k;
  k.push(site);
  k.push(r | (hasBias << 4) | (hasResidual << 5) | (p.post_op << 6) |
         (static_cast<int>(layout) << 10));
  k.push(p.groups);
  for (int i = 0; i < r + 2; ++i) {
    k.push(xDims[i]);
    k.push(wDims[i]);
    k.push(yDims[i]);
  }
  for (int i = 0; i < r; ++i) {
    k.push(p.strides[i]);
    k.push(p.dilations[i]);
    k.push(p.pads_begin[i]);
    k.push(p.pads_end[i]);
  }
  if (p.post_op == KILN_POST_CLIP) {
    k.pushFloat(p.clip_min);
    k.pushFloat(p.clip_max);
  }
  return k;
}

std::unique_ptr<ConvEntry> build(DnnlCache &cache, const int64_t *xDims, const int64_t *wDims,
                                 const int64_t *yDims, bool hasBias, bool hasResidual,
                                 const kiln_conv_params_v1 &p, ConvLayout layout) {
  int r = p.spatial_rank;
  int64_t g = p.groups;
  memory::dims src(xDims, xDims + r + 2), dst(yDims, yDims + r + 2), wei;
  if (g > 1) {
    wei = {g, wDims[0] / g, wDims[1]};
    wei.insert(wei.end(), wDims + 2, wDims + 2 + r);
  } else {
    wei.assign(wDims, wDims + r + 2);
  }
  memory::dims strides(p.strides, p.strides + r), padL(p.pads_begin, p.pads_begin + r),
      padR(p.pads_end, p.pads_end + r), dil(r);
  for (int i = 0; i < r; ++i)
    dil[i] = p.dilations[i] - 1; // oneDNN counts the gap: 0 = dense

  const auto f32 = memory::data_type::f32;
  // "Plain" here means the caller's layout: NC[D]HW, or N[D]HWC for ChannelsLast.
  tag userTag = layout == ConvLayout::ChannelsLast ? channelsLastData(r) : plainData(r);
  memory::desc srcPlain(src, f32, userTag), dstPlain(dst, f32, userTag);
  tag dataTag = layout == ConvLayout::Plain ? plainData(r) : tag::any;
  memory::desc srcMd(src, f32, dataTag), dstMd(dst, f32, dataTag);
  memory::desc weiMd(wei, f32, tag::any);
  memory::desc biasMd({yDims[1]}, f32, tag::x);

  const auto prop = dnnl::prop_kind::forward_inference;
  const auto alg = dnnl::algorithm::convolution_direct;
  dnnl::engine &eng = cache.engine();
  auto makePd = [&](bool fuse) {
    dnnl::post_ops ops;
    if (fuse && hasResidual) ops.append_sum(1.f);
    if (fuse && p.post_op != KILN_POST_NONE)
      ops.append_eltwise(1.f, eltwiseAlg(p.post_op), eltwiseAlpha(p), eltwiseBeta(p));
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto desc = hasBias ? dnnl::convolution_forward::desc(prop, alg, srcMd, weiMd, biasMd, dstMd,
                                                          strides, dil, padL, padR)
                        : dnnl::convolution_forward::desc(prop, alg, srcMd, weiMd, dstMd, strides,
                                                          dil, padL, padR);
    return dnnl::convolution_forward::primitive_desc(desc, attr, eng);
  };
  dnnl::convolution_forward::primitive_desc pd = makePd(true);
  // oneDNN 2.6's brgconv (AVX-512) mishandles the sum post-op: it crashes with sum+relu or
  // sum+clip, and leaves output rows that see only padding without conv and bias. There the
  // residual add (and the eltwise) run afterwards as one binary primitive.
  bool separate = hasResidual && std::strncmp(pd.impl_info_str(), "brg", 3) == 0;
  if (separate) pd = makePd(false);

  auto e = std::make_unique<ConvEntry>();
  e->prim = dnnl::convolution_forward(pd);
  e->wPlain = memory::desc(wei, f32, plainWeights(r, g > 1));
  e->wWant = pd.weights_desc();
  e->srcUser = memory(srcPlain, eng, nullptr);
  e->dstUser = memory(dstPlain, eng, nullptr);
  e->resUser = memory(dstPlain, eng, nullptr);
  e->bias = memory(biasMd, eng, nullptr);
  e->scratchpad = memory(pd.scratchpad_desc(), eng);
  e->dstBytes = dstPlain.get_size();
  if (separate) {
    dnnl::post_ops ops;
    if (p.post_op != KILN_POST_NONE)
      ops.append_eltwise(1.f, eltwiseAlg(p.post_op), eltwiseAlpha(p), eltwiseBeta(p));
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::binary::desc bd(dnnl::algorithm::binary_add, pd.dst_desc(), dstPlain, pd.dst_desc());
    e->addResidual = dnnl::binary(dnnl::binary::primitive_desc(bd, attr, eng));
    e->separate = true;
    // The conv overwrites y before the add reads the residual when they share memory.
    if (pd.dst_desc() == dstPlain) e->resCopy = memory(dstPlain, eng);
  }
  if (pd.src_desc() != srcPlain) {
    e->srcReorder = true;
    e->srcBuf = memory(pd.src_desc(), eng);
    e->srcR = dnnl::reorder(e->srcUser, e->srcBuf);
  }
  if (pd.dst_desc() != dstPlain) {
    e->dstReorder = true;
    e->dstBuf = memory(pd.dst_desc(), eng);
    e->dstR = dnnl::reorder(e->dstBuf, e->dstUser);
    if (hasResidual && !separate) e->resR = dnnl::reorder(e->resUser, e->dstBuf);
  }
  return e;
}

} // namespace

int convForward(Runner &r, int64_t site, const float *x, const int64_t *xDims, const float *w,
                const int64_t *wDims, const float *bias, const float *residual, float *y,
                const int64_t *yDims, const kiln_conv_params_v1 &p, ConvLayout layout) {
  if (int st = checkArgs(site, x, xDims, w, wDims, y, yDims, p)) return st;
  // Depthwise 3x3 and 3x3 stride-1 dense convs where kiln's own kernels were measured faster
  // than oneDNN 2.6 (shim_dwconv.h, conv_winograd.h); 1x1 convs and KxK convs on few pixels as
  // GEMMs (conv_pointwise.cpp, conv_patch_gemm.cpp); convs of few input channels (a stem) as
  // direct ones (conv_direct.h).
  if (layout == ConvLayout::ChannelsLast && useKilnDepthwise(xDims, wDims, yDims, residual, p))
    return dwConvForward(r, site, x, xDims, w, bias, y, yDims, p);
  if (layout == ConvLayout::ChannelsLast && directConvWanted(xDims, wDims, yDims, residual, p))
    return directConvForward(r, site, x, xDims, w, wDims, bias, y, yDims, p);
  if (layout == ConvLayout::ChannelsLast &&
      pointwiseAsGemm(xDims, wDims, yDims, p, residual != nullptr))
    return pointwiseConvForward(r, site, x, xDims, w, bias, residual, y, yDims, p);
  if (layout == ConvLayout::ChannelsLast && r.isConstant(w) &&
      patchGemmWanted(wDims, yDims, p, residual, y))
    return patchGemmForward(r, site, x, xDims, w, wDims, bias, residual, y, yDims, p);
  if (layout == ConvLayout::ChannelsLast && winograd::wanted(xDims, wDims, yDims, p))
    return winograd::forward(r, site, x, xDims, w, wDims, bias, residual, y, yDims, p);
  try {
    DnnlCache &cache = r.dnnl;
    CacheKey key = makeKey(site, xDims, wDims, yDims, bias, residual, p, layout);
    auto *e = static_cast<ConvEntry *>(cache.find(key));
    if (!e)
      e = static_cast<ConvEntry *>(
          cache.insert(key, build(cache, xDims, wDims, yDims, bias, residual, p, layout)));

    dnnl::stream &s = cache.stream();
    memory wei = cache.weights(site, w, r.isConstant(w), e->wPlain, e->wWant, e->wScratch);
    e->srcUser.set_data_handle(const_cast<float *>(x));
    e->dstUser.set_data_handle(y);
    memory src = e->srcUser, dst = e->dstUser;
    if (e->srcReorder) {
      e->srcR.execute(s, e->srcUser, e->srcBuf);
      src = e->srcBuf;
    }
    if (e->dstReorder) dst = e->dstBuf;
    memory res;
    if (residual && e->separate) {
      e->resUser.set_data_handle(const_cast<float *>(residual));
      res = e->resUser;
      if (residual == y && e->resCopy) {
        std::memcpy(e->resCopy.get_data_handle(), residual, e->dstBytes);
        res = e->resCopy;
      }
    } else if (residual) {
      // The sum post-op adds what dst holds, so dst starts as the residual.
      if (e->dstReorder) {
        e->resUser.set_data_handle(const_cast<float *>(residual));
        e->resR.execute(s, e->resUser, e->dstBuf);
      } else if (residual != y) {
        std::memmove(y, residual, e->dstBytes);
      }
    }
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src},
                                         {DNNL_ARG_WEIGHTS, wei},
                                         {DNNL_ARG_DST, dst},
                                         {DNNL_ARG_SCRATCHPAD, e->scratchpad}};
    if (bias) {
      e->bias.set_data_handle(const_cast<float *>(bias));
      args[DNNL_ARG_BIAS] = e->bias;
    }
    e->prim.execute(s, args);
    if (e->separate)
      e->addResidual.execute(s,
                             {{DNNL_ARG_SRC_0, dst}, {DNNL_ARG_SRC_1, res}, {DNNL_ARG_DST, dst}});
    if (e->dstReorder) e->dstR.execute(s, e->dstBuf, e->dstUser);
    s.wait();
    return KILN_OK;
  } catch (const dnnl::error &err) {
    return fail(KILN_ERR_INTERNAL, "conv site %lld: oneDNN error: %s (status %d)",
                static_cast<long long>(site), err.what(), static_cast<int>(err.status));
  } catch (const std::bad_alloc &) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "conv site %lld: out of memory",
                static_cast<long long>(site));
  }
}

} // namespace kiln::rt

extern "C" KILN_RT_API int kiln_shim_conv_v1(kiln_shim_ctx *ctx, int64_t site, const float *x,
                                             const int64_t *x_dims, const float *w,
                                             const int64_t *w_dims, const float *bias,
                                             const float *residual, float *y, const int64_t *y_dims,
                                             const kiln_conv_params_v1 *params) {
  if (!ctx || !params)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT, "kiln_shim_conv_v1: NULL ctx or params");
  return kiln::rt::convForward(*static_cast<kiln::rt::Runner *>(ctx), site, x, x_dims, w, w_dims,
                               bias, residual, y, y_dims, *params, kiln::rt::ConvLayout::Blocked);
}

extern "C" KILN_RT_API int kiln_shim_conv_v2(kiln_shim_ctx *ctx, int64_t site, const float *x,
                                             const int64_t *x_dims, const float *w,
                                             const int64_t *w_dims, const float *bias,
                                             const float *residual, float *y, const int64_t *y_dims,
                                             const kiln_conv_params_v1 *params,
                                             int32_t data_layout) {
  if (!ctx || !params)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT, "kiln_shim_conv_v2: NULL ctx or params");
  if (data_layout != KILN_LAYOUT_CHANNELS_FIRST && data_layout != KILN_LAYOUT_CHANNELS_LAST)
    return kiln::rt::fail(KILN_ERR_INVALID_ARGUMENT, "kiln_shim_conv_v2: data_layout %d unknown",
                          static_cast<int>(data_layout));
  auto layout = data_layout == KILN_LAYOUT_CHANNELS_LAST ? kiln::rt::ConvLayout::ChannelsLast
                                                         : kiln::rt::ConvLayout::Blocked;
  return kiln::rt::convForward(*static_cast<kiln::rt::Runner *>(ctx), site, x, x_dims, w, w_dims,
                               bias, residual, y, y_dims, *params, layout);
}
