// `_KilnSDPA` (made by passes/fuse_attention.cpp): scaled-dot-product attention through
// kiln_shim_sdpa_v2. Q, K and V are realized contiguous as [B, H, S, D]; K arrives
// transposed ([B, H, D, S]) from the matched MatMul and is read back through a view. An
// optional fourth input is the mask (additive, or a Where condition; see mask_kind).
#include "lower/ops_common.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;

ExternArg arg(ExternArg::Kind k, loop::Buffer *b = nullptr, std::string lit = {}) {
  ExternArg a;
  a.kind = k;
  a.buf = b;
  a.literal = std::move(lit);
  return a;
}

void lowerSDPA(OpCtx &c) {
  sym::Context &ctx = c.ctx();
  LTensor q = c.in(0), kt = c.in(1), v = c.in(2);
  if (q.dtype != DType::Float32 || q.rank() != 4 || kt.rank() != 4 || v.rank() != 4)
    c.unsupported("attention on non-float32 or non-4-D tensors");
  ir::Shape kShape{kt.shape[0], kt.shape[1], kt.shape[3], kt.shape[2]};
  LTensor k = c.pointwise(kt.dtype, kShape, [kt](const Index &i) {
    return kt.load({i[0], i[1], i[3], i[2]});
  });
  // Batch/head dims must agree (no broadcasting inside the shim).
  for (int d = 0; d < 2; ++d)
    if (!sym::provablyEqual(q.shape[d], k.shape[d]) || !sym::provablyEqual(q.shape[d], v.shape[d]))
      c.unsupported("attention with broadcast batch/head dims");
  loop::Buffer *qb = c.realize(q).buffer, *kb = c.realize(k).buffer, *vb = c.realize(v).buffer;
  // The mask the fusion matched (mask_kind 1: added to the scores; 2: Where's condition,
  // made additive as cond ? 0 : fill), realized in its own shape and read through strides
  // that are 0 where it broadcasts.
  ExternArg maskArg = arg(ExternArg::Kind::Null), stridesArg = arg(ExternArg::Kind::Null);
  loop::Buffer *mb = nullptr;
  if (c.node.inputs.size() > 3) {
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
    std::vector<sym::Expr> strides(4, ctx.constant(0));
    sym::Expr step = ctx.constant(1);
    for (int d = 3, md = m.rank() - 1; md >= 0; --d, --md) {
      // passes/fuse_attention.cpp checked: 1, or provably the scores' dim.
      if (!m.shape[md].isConst(1) || scores[d].isConst(1)) strides[d] = step;
      step = step * m.shape[md];
    }
    maskArg = arg(ExternArg::Kind::Buffer, mb);
    stridesArg = arg(ExternArg::Kind::Dims);
    stridesArg.dims = strides;
  }
  ir::Shape outShape{q.shape[0], q.shape[1], q.shape[2], v.shape[3]};
  loop::Buffer *out =
      c.prog().newBuffer(DType::Float32, outShape, loop::BufferKind::Intermediate, "");
  loop::Kernel *kn = c.externKernel("kiln_shim_sdpa_v2");
  kn->ext.inputs = {qb, kb, vb};
  if (mb) kn->ext.inputs.push_back(mb);
  kn->ext.outputs = {out};
  ExternArg dims = arg(ExternArg::Kind::Dims);
  dims.dims = {q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3]};
  // The model gives the scale explicitly (the matched Mul/Div, or 1 without one).
  std::string scale = fmt::format("(float)({:.17g})", c.node.attrFloat("scale", 1.0f));
  kn->ext.args = {arg(ExternArg::Kind::Site),
                  arg(ExternArg::Kind::Buffer, qb),
                  arg(ExternArg::Kind::Buffer, kb),
                  arg(ExternArg::Kind::Buffer, vb),
                  maskArg,
                  stridesArg,
                  arg(ExternArg::Kind::Buffer, out),
                  dims,
                  arg(ExternArg::Kind::FloatPtr, nullptr, scale)};
  c.out(0, fromBuffer(c.ctx(), out));
}

} // namespace

void registerAttentionOps(std::vector<OpInfo> &r) {
  r.push_back({"_KilnSDPA", 1, lowerSDPA});
}

} // namespace kiln::lower
