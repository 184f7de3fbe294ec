// `_KilnMatMulMulti` (made by passes/fuse_sibling_matmul.cpp): inputs A, B_0, bias_0, B_1,
// bias_1, ... (a bias may be absent), one output per B. One extern call
// (kiln_shim_matmul_multi_v1) writes A x [B_0 | B_1 | ...] + biases into one [.., M, sum N]
// buffer; output g is a view of its column block, so the readers (the attention's head
// transposes) read it in place and nothing is copied.
#include "lower/ops_common.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;
using loop::ExternParam;

/// Columns [offset, offset + n) of the last dim of `full`.
LTensor columnBlock(const LTensor &full, sym::Expr offset, sym::Expr n) {
  LTensor v;
  v.dtype = full.dtype;
  v.shape = full.shape;
  v.shape.back() = n;
  v.cheap = true;
  Loader load = full.load;
  v.load = [load, offset](const Index &i) {
    Index j = i;
    j.back() = j.back() + offset;
    return load(j);
  };
  return v;
}

void lowerMatMulMulti(OpCtx &c) {
  sym::Context &ctx = c.ctx();
  const size_t count = c.node.outputs.size();
  KILN_ASSERT(count >= 1 && count <= KILN_MATMUL_MULTI_MAX && c.numInputs() == 1 + 2 * count,
              "{}: {} inputs for {} outputs", c.node.describe(), c.numInputs(), count);
  LTensor a = c.realize(c.in(0));
  KILN_ASSERT(a.dtype == DType::Float32 && a.rank() >= 2, "{}: A must be float32 of rank >= 2",
              c.node.describe());
  const sym::Expr k = a.shape.back();
  const sym::Expr m = loop::product(ctx, a.shape, 0, a.shape.size() - 1);
  std::vector<loop::Buffer *> bs, biases;
  std::vector<sym::Expr> ns;
  bool anyBias = false;
  sym::Expr total = ctx.constant(0);
  for (size_t g = 0; g < count; ++g) {
    LTensor b = c.realize(c.in(1 + 2 * g));
    KILN_ASSERT(b.dtype == DType::Float32 && b.rank() == 2 && sym::provablyEqual(b.shape[0], k),
                "{}: weight {} is not a float32 [K, N] matrix", c.node.describe(), g);
    bs.push_back(b.buffer);
    ns.push_back(b.shape[1]);
    total = total + b.shape[1];
    loop::Buffer *bias = c.has(2 + 2 * g) ? c.realize(c.in(2 + 2 * g)).buffer : nullptr;
    anyBias = anyBias || bias;
    biases.push_back(bias);
  }
  ir::Shape outShape = a.shape;
  outShape.back() = total;
  loop::Buffer *out =
      c.prog().newBuffer(DType::Float32, outShape, loop::BufferKind::Intermediate, "");
  loop::Kernel *kn = c.externKernel(loop::ExternKind::MatMulMulti);
  kn->ext.inputs = {a.buffer};
  kn->ext.inputs.insert(kn->ext.inputs.end(), bs.begin(), bs.end());
  for (loop::Buffer *b : biases)
    if (b) kn->ext.inputs.push_back(b);
  kn->ext.outputs = {out};
  ExternArg site, weights, biasArray, params;
  site.kind = ExternArg::Kind::Site;
  weights.kind = ExternArg::Kind::Buffers;
  weights.bufs = bs;
  biasArray.kind = anyBias ? ExternArg::Kind::Buffers : ExternArg::Kind::Null;
  biasArray.bufs = biases;
  params.kind = ExternArg::Kind::Params;
  kn->ext.args = {site, externBuffer(a.buffer), weights, biasArray, externBuffer(out), params};
  auto &p = kn->ext.params;
  p.push_back(ExternParam::symbolic("m", m));
  p.push_back(ExternParam::symbolic("k", k));
  p.push_back(ExternParam::symbolic("lda", k));
  p.push_back(ExternParam::symbolic("ldc", total));
  p.push_back(ExternParam::integer("count", static_cast<int64_t>(count)));
  for (size_t g = 0; g < count; ++g)
    p.push_back(ExternParam::symbolic("n", ns[g], static_cast<int>(g)));

  LTensor full = fromBuffer(ctx, out);
  sym::Expr offset = ctx.constant(0);
  for (size_t g = 0; g < count; ++g) {
    c.out(g, columnBlock(full, offset, ns[g]));
    offset = offset + ns[g];
  }
}

} // namespace

void registerMatMulMultiOps(std::vector<OpInfo> &r) {
  r.push_back({"_KilnMatMulMulti", 1, lowerMatMulMulti});
}

} // namespace kiln::lower
