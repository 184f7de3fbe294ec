// Per-device legalisation of the loop IR: maps each extern call to the shim that runs it
// on the target device and refuses, at compile time and by node, what the device cannot
// run. On the CPU every extern already names its (oneDNN / host) shim.
#include "sched/schedule.h"

#include "kiln/shim.h"
#include "support/error.h"

#include <fmt/format.h>

#include <map>
#include <optional>
#include <set>

namespace kiln::sched {

namespace {

/// What a CPU shim computes, for messages ("Conv", "NonZero", ...).
const char *externOp(const std::string &fn) {
  static const std::map<std::string, const char *> ops = {
      {"kiln_shim_conv_v1", "Conv"},
      {"kiln_shim_conv_v2", "Conv"},
      {"kiln_shim_matmul_v1", "MatMul/Gemm"},
      {"kiln_shim_sdpa_v1", "attention"},
      {"kiln_shim_sdpa_v2", "attention"},
      {"kiln_shim_scatter_elements_v1", "ScatterElements"},
      {"kiln_shim_scatter_nd_v1", "ScatterND"},
      {"kiln_shim_nonzero_v1", "NonZero"},
      {"kiln_shim_unique_v1", "Unique"},
      {"kiln_shim_nms_v1", "NonMaxSuppression"},
      {"kiln_shim_to_string_v1", "Cast to string"},
      {"kiln_shim_from_string_v1", "Cast from string"},
      {"kiln_shim_string_normalizer_v1", "StringNormalizer"},
      {"kiln_shim_string_lookup_v1", "LabelEncoder"},
      {"kiln_shim_string_concat_v1", "StringConcat"},
      {"kiln_shim_string_split_v1", "StringSplit"},
      {"kiln_shim_regex_full_match_v1", "RegexFullMatch"},
      {"kiln_shim_image_decode_v1", "ImageDecoder"}};
  auto it = ops.find(fn);
  return it == ops.end() ? fn.c_str() : it->second;
}

loop::ExternArg literalArg(std::string text) {
  loop::ExternArg a;
  a.kind = loop::ExternArg::Kind::Literal;
  a.literal = std::move(text);
  return a;
}

/// The fusion pass keeps Clip out of calls for devices without a clip epilogue.
void assertNoClip(const loop::ExternCall &e) {
  for (auto &[field, value] : e.params)
    KILN_ASSERT(field != "post_op" || value != std::to_string(KILN_POST_CLIP),
                "a fused Clip reached CUDA legalisation ({})", e.function);
}

void toCudaConv(loop::ExternCall &e, const Target &t) {
  assertNoClip(e);
  e.function = "kiln_shim_cuda_conv_v1";
  e.args.push_back(literalArg("KILN_ELEM_F32"));
  e.args.push_back(literalArg(t.allowTf32 ? "KILN_CUDA_ALLOW_TF32" : "0u"));
}

void toCudaMatmul(loop::ExternCall &e, const Target &t) {
  assertNoClip(e);
  e.function = "kiln_shim_cuda_matmul_v1";
  e.paramsType = "kiln_cuda_matmul_params_v1";
  for (auto &[field, value] : e.params)
    field = "mm." + field;
  for (auto &[field, value] : e.symParams)
    field = "mm." + field;
  e.params.push_back({"elem_type", "KILN_ELEM_F32"});
  e.params.push_back({"flags", t.allowTf32 ? "KILN_CUDA_ALLOW_TF32" : "0u"});
}

loop::ExternArg bufferArg(loop::Buffer *b) {
  loop::ExternArg a;
  a.kind = b ? loop::ExternArg::Kind::Buffer : loop::ExternArg::Kind::Null;
  a.buf = b;
  return a;
}

/// The CPU runs attention through kiln_shim_sdpa_v2 (runtime/shim_sdpa.cpp).
void attentionToCpuShim(loop::Kernel &k) {
  const loop::AttentionCall &a = k.attn;
  loop::ExternCall &e = k.ext;
  e.function = "kiln_shim_sdpa_v2";
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
    scale.kind = loop::ExternArg::Kind::FloatPtr;
    scale.literal = fmt::format("(float)({:.17g})", *a.scale);
  }
  e.args = {site,        bufferArg(a.q),   bufferArg(a.k), bufferArg(a.v), bufferArg(a.mask),
            maskStrides, bufferArg(k.out), dims,           scale};
  k.kind = loop::KernelKind::Extern;
}

void legalizeForCpu(loop::Program &p) {
  for (auto &kp : p.kernels)
    if (kp->kind == loop::KernelKind::Attention) attentionToCpuShim(*kp);
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
    const std::string &fn = k.ext.function;
    if (fn == "kiln_shim_conv_v1") {
      toCudaConv(k.ext, t);
    } else if (fn == "kiln_shim_matmul_v1") {
      toCudaMatmul(k.ext, t);
    } else {
      fail("node '{}': {} has no CUDA implementation in kiln yet (it runs as {} on the cpu); "
           "compile for cpu",
           k.origin, externOp(fn), fn);
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
