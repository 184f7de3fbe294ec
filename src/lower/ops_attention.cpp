// `_KilnSDPA` (made by passes/fuse_attention.cpp): one Attention kernel, which per-device
// legalisation maps to kiln_shim_sdpa_v2/_v3 (cpu) or a generated fused kernel (cuda). Q, K
// and V (rank 4, or rank 3 as one batch) are [B, H, S, D]; K arrives transposed ([B, H, D,
// S]) from the matched MatMul and is read back through a view. On the CPU a Q, K or V that is
// a strided view of a realized tensor (the head split of a projection: Reshape, Transpose,
// a column slice of the fused Q/K/V GEMM) is read in place through the call's layout;
// anything else, and every input on CUDA, is realized contiguous. An optional fourth input
// is the mask (additive, or a Where condition; see mask_kind).
#include "lower/ops_common.h"

#include <cstdlib>
#include <cstring>
#include <optional>

namespace kiln::lower {

namespace {

/// Whether the attention's only reader is the head merge (Transpose 0, 2, 1, 3), which then
/// reads a [B, S, H, Dv] result as the contiguous [B, S, H Dv] the output projection takes.
bool mergedByTranspose(const ir::Node &n) {
  const ir::Value *out = n.outputs.empty() ? nullptr : n.outputs[0];
  if (!out || out->users.size() != 1 || out->users[0]->op != "Transpose") return false;
  return out->users[0]->attrInts("perm") == std::vector<int64_t>{0, 2, 1, 3};
}

bool stridedAttentionOn(const Lowerer &l) {
  const char *env = std::getenv("KILN_STRIDED_ATTENTION");
  return l.target.stridedAttention && !(env && std::strcmp(env, "0") == 0);
}

void lowerSDPA(OpCtx &c) {
  sym::Context &ctx = c.ctx();
  LTensor q = c.in(0), kt = c.in(1), v = c.in(2);
  const int rank = q.rank();
  if (q.dtype != DType::Float32 || (rank != 3 && rank != 4) || kt.rank() != rank ||
      v.rank() != rank)
    c.unsupported("attention on non-float32 tensors or tensors of rank other than 3 or 4");
  if (rank == 3) { // [B*H, S, D] from a batched matmul: one batch of B*H heads
    auto lift = [&](const LTensor &t) {
      return reshapeView(ctx, t, {ctx.constant(1), t.shape[0], t.shape[1], t.shape[2]});
    };
    q = lift(q);
    kt = lift(kt);
    v = lift(v);
  }
  ir::Shape kShape{kt.shape[0], kt.shape[1], kt.shape[3], kt.shape[2]};
  LTensor k = c.pointwise(kt.dtype, kShape, [kt](const Index &i) {
    return kt.load({i[0], i[1], i[3], i[2]});
  });
  // Batch/head dims must agree (no broadcasting inside the shim).
  for (int d = 0; d < 2; ++d)
    if (!sym::provablyEqual(q.shape[d], k.shape[d]) || !sym::provablyEqual(q.shape[d], v.shape[d]))
      c.unsupported("attention with broadcast batch/head dims");
  // Each input in place where it is a strided view of a buffer with its last dim contiguous
  // (CPU; tensor.h's affineLoad), else realized contiguous. layout: offset and b, h, s
  // strides per tensor, as kiln_shim_sdpa_v3 takes them.
  const bool strided = stridedAttentionOn(c.lowerer());
  // Heads written side by side ([B, S, H, Dv]) where the head merge reads them next, so the
  // merge is a plain reshape the output projection takes without a copy.
  const bool headsLast = strided && rank == 4 && mergedByTranspose(c.node);
  std::vector<sym::Expr> layout;
  bool inPlace = headsLast; // some tensor not a packed [B, H, S, D]: the _v3 call
  auto place = [&](const LTensor &t) {
    const std::vector<sym::Expr> dense = rowMajorStrides(ctx, t.shape);
    std::optional<AffineLoad> view;
    if (strided) view = affineLoad(ctx, t);
    if (view && !view->strides[3].isConst(1)) view.reset();
    const std::vector<sym::Expr> &steps = view ? view->strides : dense;
    const sym::Expr offset = view ? view->offset : ctx.constant(0);
    layout.insert(layout.end(), {offset, steps[0], steps[1], steps[2]});
    inPlace = inPlace || !offset.isConst(0);
    for (int d = 0; d < 3; ++d)
      inPlace = inPlace || !sym::provablyEqual(steps[d], dense[d]);
    return view ? view->buf : c.realize(t).buffer;
  };
  loop::Buffer *qb = place(q), *kb = place(k), *vb = place(v);
  // The mask the fusion matched (rank 4 only; mask_kind 1: added to the scores; 2: Where's
  // condition, made additive as cond ? 0 : fill), realized in its own shape and read
  // through strides that are 0 where it broadcasts.
  loop::Buffer *mb = nullptr;
  std::vector<sym::Expr> maskStrides;
  if (c.node.inputs.size() > 3) {
    if (rank != 4) c.unsupported("a masked attention of rank 3");
    LTensor m = c.in(3);
    if (c.node.attrInt("mask_kind", 1) == 2) {
      float fill = c.node.attrFloat("mask_fill", 0.f);
      m = c.pointwise(DType::Float32, m.shape, [m, fill](const Index &i) {
        return loop::select(m.load(i), loop::constant(DType::Float32, 0.0),
                            loop::constant(DType::Float32, fill));
      });
    }
    mb = c.realize(m).buffer;
    ir::Shape scores{q.shape[0], q.shape[1], q.shape[2], k.shape[2]};
    maskStrides.assign(4, ctx.constant(0));
    sym::Expr step = ctx.constant(1);
    for (int d = 3, md = m.rank() - 1; md >= 0; --d, --md) {
      // passes/fuse_attention.cpp checked: 1, provably the scores' dim, or both symbolic
      // (which may be 1 at run time: its stride is 0 then).
      maskStrides[d] = step * broadcastStep(ctx, m.shape[md], scores[d]);
      step = step * m.shape[md];
    }
  }
  ir::Shape outShape{q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
  const ir::Shape outPhysical =
      headsLast ? ir::Shape{outShape[0], outShape[2], outShape[1], outShape[3]} : outShape;
  loop::Buffer *out =
      c.prog().newBuffer(DType::Float32, outPhysical, loop::BufferKind::Intermediate, "");
  loop::Kernel *kn = c.prog().newKernel(loop::KernelKind::Attention);
  kn->origin = c.node.name;
  kn->ext.site = c.prog().nextSite++; // the CPU shim's call site (its arena scratch)
  kn->out = out;
  kn->attn.q = qb;
  kn->attn.k = kb;
  kn->attn.v = vb;
  kn->attn.mask = mb;
  kn->attn.maskStrides = maskStrides;
  kn->attn.dims = {q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3]};
  // The model gives the scale explicitly (the matched Mul/Div, or 1 without one).
  kn->attn.scale = c.node.attrFloat("scale", 1.0f);
  if (inPlace) { // out: [B, Sq, H, Dv] when headsLast, else [B, H, Sq, Dv]
    const std::vector<sym::Expr> p = rowMajorStrides(ctx, outPhysical);
    layout.insert(layout.end(),
                  {ctx.constant(0), p[0], headsLast ? p[2] : p[1], headsLast ? p[1] : p[2]});
    kn->attn.layout = layout;
  }
  LTensor result = fromBuffer(ctx, out);
  if (headsLast) { // the logical [B, H, Sq, Dv] over the physical [B, Sq, H, Dv]
    const LTensor physical = result;
    result.shape = outShape;
    result.buffer = nullptr;
    result.load = [physical](const Index &i) { return physical.load({i[0], i[2], i[1], i[3]}); };
  }
  if (rank == 3) result = reshapeView(ctx, result, {outShape[1], outShape[2], outShape[3]});
  c.out(0, result);
}

} // namespace

void registerAttentionOps(std::vector<OpInfo> &r) {
  r.push_back({"_KilnSDPA", 1, lowerSDPA});
}

} // namespace kiln::lower
