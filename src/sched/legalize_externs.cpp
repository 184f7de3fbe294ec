// Per-device legalisation of the loop IR: maps each extern call to the shim that runs it
// on the target device and refuses, at compile time and by node, what the device cannot
// run. On the CPU every extern already names its (oneDNN / host) shim.
#include "sched/schedule.h"

#include "kiln/shim.h"
#include "support/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>

namespace kiln::sched {

namespace {

/// The CPU shim of each extern kind and the C type of its params struct ("" if none).
struct CpuShim {
  const char *function;
  const char *paramsType;
};

/// Argument index of an attention call's layout (kiln_shim_sdpa_v3: site, q, k, v, mask,
/// mask_strides, out, dims, scale, layout).
constexpr size_t kSdpaLayoutArg = 9;

/// Argument index of a matmul's residual (lower/ops_nn.cpp: site, a, b, addend, residual, c).
constexpr size_t kMatmulResidualArg = 4;

/// A matmul needs the level-7 shim (kiln_shim_matmul_v2 / cuda_matmul_v2) for a residual or
/// a GELU post-op; every other matmul keeps calling the level-1/4 one, so models that do not
/// use them still load on older runtimes.
bool matmulNeedsV2(const loop::ExternCall &e) {
  const loop::ExternParam *post = e.param("post_op");
  bool gelu = post && (post->number == KILN_POST_GELU_ERF || post->number == KILN_POST_GELU_TANH);
  return gelu || e.args.at(kMatmulResidualArg).kind == loop::ExternArg::Kind::Buffer;
}

/// Drops the (absent) residual argument of a matmul that calls a _v1 shim.
void dropResidualArg(loop::ExternCall &e) {
  KILN_ASSERT(e.args.at(kMatmulResidualArg).kind == loop::ExternArg::Kind::Null,
              "a matmul with a residual legalised to a _v1 shim");
  e.args.erase(e.args.begin() + kMatmulResidualArg);
}

CpuShim cpuShim(const loop::ExternCall &e) {
  switch (e.kind) {
  case loop::ExternKind::Conv: {
    // oneDNN's channels-last convolution has its own entry point (level 2).
    bool channelsLast = std::any_of(e.args.begin(), e.args.end(), [](const loop::ExternArg &a) {
      return a.kind == loop::ExternArg::Kind::Layout;
    });
    return {channelsLast ? "kiln_shim_conv_v2" : "kiln_shim_conv_v1", "kiln_conv_params_v1"};
  }
  case loop::ExternKind::MatMul:
    return {matmulNeedsV2(e) ? "kiln_shim_matmul_v2" : "kiln_shim_matmul_v1",
            "kiln_matmul_params_v1"};
  case loop::ExternKind::Attention: // _v3 where the call carries a layout (its last argument)
    return {e.args.size() > kSdpaLayoutArg ? "kiln_shim_sdpa_v3" : "kiln_shim_sdpa_v2", ""};
  case loop::ExternKind::ScatterElements:
    return {"kiln_shim_scatter_elements_v1", ""};
  case loop::ExternKind::ScatterND:
    return {"kiln_shim_scatter_nd_v1", ""};
  case loop::ExternKind::NonZero:
    return {"kiln_shim_nonzero_v1", ""};
  case loop::ExternKind::Unique:
    return {"kiln_shim_unique_v1", ""};
  case loop::ExternKind::NonMaxSuppression:
    return {"kiln_shim_nms_v1", ""};
  case loop::ExternKind::ToString:
    return {"kiln_shim_to_string_v1", ""};
  case loop::ExternKind::FromString:
    return {"kiln_shim_from_string_v1", ""};
  case loop::ExternKind::StringNormalizer:
    return {"kiln_shim_string_normalizer_v1", ""};
  case loop::ExternKind::StringLookup:
    return {"kiln_shim_string_lookup_v1", ""};
  case loop::ExternKind::StringConcat:
    return {"kiln_shim_string_concat_v1", ""};
  case loop::ExternKind::StringSplit:
    return {"kiln_shim_string_split_v1", ""};
  case loop::ExternKind::RegexFullMatch:
    return {"kiln_shim_regex_full_match_v1", ""};
  case loop::ExternKind::ImageDecode:
    return {"kiln_shim_image_decode_v1", ""};
  case loop::ExternKind::MatMulMulti:
    return {"kiln_shim_matmul_multi_v1", "kiln_matmul_multi_params_v1"};
  case loop::ExternKind::ConvChain:
    return {"kiln_shim_conv_chain_v1", "kiln_conv_chain_params_v1"};
  }
  KILN_ASSERT(false, "extern kind {} has no cpu shim", static_cast<int>(e.kind));
}

void toCpuShim(loop::ExternCall &e) {
  CpuShim shim = cpuShim(e);
  if (e.kind == loop::ExternKind::MatMul && !matmulNeedsV2(e)) dropResidualArg(e);
  e.function = shim.function;
  e.paramsType = shim.paramsType;
}

loop::ExternArg intArg(int64_t v) {
  loop::ExternArg a;
  a.kind = loop::ExternArg::Kind::Int;
  a.number = v;
  return a;
}

/// The fusion pass keeps Clip out of calls for devices without a clip epilogue, and
/// channels-last layouts out of devices that do not ask for them.
void assertCudaCanTake(const loop::ExternCall &e) {
  const loop::ExternParam *post = e.param("post_op");
  KILN_ASSERT(!post || post->number != KILN_POST_CLIP, "a fused Clip reached CUDA legalisation");
  KILN_ASSERT(!post || post->number != KILN_POST_GELU_ERF,
              "a fused erf GELU reached CUDA legalisation (cuBLASLt's GELU is the tanh form)");
  for (const loop::ExternArg &a : e.args)
    KILN_ASSERT(a.kind != loop::ExternArg::Kind::Layout,
                "a channels-last Conv reached CUDA legalisation");
}

uint32_t cudaMathFlags(const Target &t) {
  return t.allowTf32 ? KILN_CUDA_ALLOW_TF32 : 0u;
}

/// cuDNN's convolution takes the CPU shim's params plus an element type and math flags.
void toCudaConv(loop::ExternCall &e, const Target &t) {
  assertCudaCanTake(e);
  e.function = "kiln_shim_cuda_conv_v1";
  e.paramsType = "kiln_conv_params_v1";
  e.args.push_back(intArg(KILN_ELEM_F32));
  e.args.push_back(intArg(cudaMathFlags(t)));
}

/// cuBLASLt's matmul params wrap the CPU shim's (member `mm`).
void toCudaMatmul(loop::ExternCall &e, const Target &t) {
  assertCudaCanTake(e);
  bool v2 = matmulNeedsV2(e);
  if (!v2) dropResidualArg(e);
  e.function = v2 ? "kiln_shim_cuda_matmul_v2" : "kiln_shim_cuda_matmul_v1";
  e.paramsType = "kiln_cuda_matmul_params_v1";
  for (loop::ExternParam &f : e.params)
    f.nest = "mm";
  e.params.push_back(loop::ExternParam::integer("elem_type", KILN_ELEM_F32));
  e.params.push_back(loop::ExternParam::integer("flags", cudaMathFlags(t)));
}

/// The CPU runs attention through kiln_shim_sdpa_v2, or _v3 for strided Q/K/V
/// (runtime/shim_sdpa.cpp).
void attentionToExtern(loop::Kernel &k) {
  const loop::AttentionCall &a = k.attn;
  loop::ExternCall &e = k.ext;
  e.kind = loop::ExternKind::Attention;
  e.inputs = {a.q, a.k, a.v};
  if (a.mask) e.inputs.push_back(a.mask);
  e.outputs = {k.out};
  loop::ExternArg site, maskStrides, dims, scale;
  site.kind = loop::ExternArg::Kind::Site;
  maskStrides.kind = a.mask ? loop::ExternArg::Kind::Dims : loop::ExternArg::Kind::Null;
  maskStrides.dims = a.maskStrides;
  dims.kind = loop::ExternArg::Kind::Dims;
  dims.dims = a.dims;
  if (a.scale) {
    scale.kind = loop::ExternArg::Kind::Float;
    scale.real = *a.scale;
  }
  e.args = {site,
            loop::ExternArg::bufferOrNull(a.q),
            loop::ExternArg::bufferOrNull(a.k),
            loop::ExternArg::bufferOrNull(a.v),
            loop::ExternArg::bufferOrNull(a.mask),
            maskStrides,
            loop::ExternArg::bufferOrNull(k.out),
            dims,
            scale};
  if (!a.layout.empty()) {
    loop::ExternArg layout;
    layout.kind = loop::ExternArg::Kind::Dims;
    layout.dims = a.layout;
    e.args.push_back(layout);
  }
  k.kind = loop::KernelKind::Extern;
}

void legalizeForCpu(loop::Program &p) {
  for (auto &kp : p.kernels) {
    if (kp->kind == loop::KernelKind::Attention) attentionToExtern(*kp);
    if (kp->kind == loop::KernelKind::Extern) toCpuShim(kp->ext);
  }
}

/// The generated CUDA attention kernel keeps a key tile and its query rows in shared memory
/// and one accumulator per 32 output features per row in registers: head dims must be
/// static and at most kMaxCudaHeadDim (passes/fuse_attention.cpp fuses nothing larger).
void checkCudaAttention(const loop::Kernel &k) {
  for (int d : {4, 5}) {
    const sym::Expr &e = k.attn.dims[d];
    if (!e.isConst() || e->value > Target::kMaxCudaHeadDim)
      fail("node '{}': fused attention on cuda needs a static head dim of at most {} (got {})",
           k.origin, Target::kMaxCudaHeadDim, sym::toString(e));
  }
}

/// float8/float4 and int4/int2 (uint4/uint2): the CUDA printer has no encodings for them.
bool cudaLacksType(DType t) {
  return minifloatFormat(t) >= 0 || isSubByteInt(t);
}

/// The first value in v's DAG of a type CUDA kernels cannot compute, if any.
std::optional<DType> lackedTypeIn(const loop::VRef &v, std::set<const loop::VNode *> &seen) {
  if (!v || !seen.insert(v.get()).second) return std::nullopt;
  if (cudaLacksType(v->dtype)) return v->dtype;
  for (const loop::VRef &a : v->args)
    if (auto t = lackedTypeIn(a, seen)) return t;
  for (const auto &[var, val] : v->indirect)
    if (auto t = lackedTypeIn(val, seen)) return t;
  return std::nullopt;
}

void legalizeForCuda(loop::Program &p, const Target &t) {
  for (auto &b : p.buffers) {
    const std::string &name = b->label.empty() ? b->name : b->label;
    if (b->dtype == DType::String)
      fail("{}: string tensors are not supported on cuda; compile for cpu", name);
    if (cudaLacksType(b->dtype))
      fail("tensor '{}' has element type {}, which kiln does not support on cuda yet "
           "(float8, float4e2m1, int4/uint4, int2/uint2 run on the cpu); compile for cpu",
           name, dtypeName(b->dtype));
  }
  for (auto &kp : p.kernels) {
    std::set<const loop::VNode *> seen;
    if (auto lacked = lackedTypeIn(kp->body, seen))
      fail("node '{}': computes a {} value, which kiln does not support on cuda yet (float8, "
           "float4e2m1, int4/uint4, int2/uint2 run on the cpu); compile for cpu",
           kp->origin, dtypeName(*lacked));
  }
  for (auto &kp : p.kernels) {
    loop::Kernel &k = *kp;
    if (k.kind == loop::KernelKind::Call)
      fail("node '{}': control flow (If/Loop/Scan) is not supported on cuda yet; compile for "
           "cpu",
           k.origin);
    if (k.kind == loop::KernelKind::Attention) checkCudaAttention(k);
    if (k.kind != loop::KernelKind::Extern) continue;
    switch (k.ext.kind) {
    case loop::ExternKind::Conv:
      toCudaConv(k.ext, t);
      break;
    case loop::ExternKind::MatMul:
      toCudaMatmul(k.ext, t);
      break;
    default:
      fail("node '{}': {} has no CUDA implementation in kiln yet (it runs as {} on the cpu); "
           "compile for cpu",
           k.origin, loop::externKindName(k.ext.kind), cpuShim(k.ext).function);
    }
  }
}

} // namespace

void legalizeExterns(loop::Program &p, const Target &t) {
  switch (t.device) {
  case DeviceKind::Cpu:
    legalizeForCpu(p);
    return;
  case DeviceKind::Cuda:
    legalizeForCuda(p, t);
    return;
  }
}

} // namespace kiln::sched
