// Neural-network ops: Conv/MatMul/Gemm as oneDNN externs through the shim (other matmul
// types as a generated reduction), BatchNormalization as a pointwise affine.
#include "lower/ops_common.h"
#include "lower/window.h"

#include "kiln/shim.h"

namespace kiln::lower {

namespace {

using loop::ExternArg;
using loop::ExternParam;
using loop::ReduceOp;

ExternArg dimsArg(const ir::Shape &s) {
  ExternArg a;
  a.kind = ExternArg::Kind::Dims;
  a.dims = s;
  return a;
}
ExternArg kindArg(ExternArg::Kind k) {
  ExternArg a;
  a.kind = k;
  return a;
}

/// t as a channels-last buffer view: itself if it already is one, else a transposing copy.
LTensor asChannelsLast(OpCtx &c, const LTensor &t) {
  if (t.channelsLast) return t;
  ir::Shape phys = channelsLastShape(t.shape);
  int rank = t.rank();
  LTensor src = t;
  LTensor physT = c.pointwise(t.dtype, phys, [src, rank](const Index &p) {
    Index logical{p[0], p[rank - 1]};
    logical.insert(logical.end(), p.begin() + 1, p.end() - 1);
    return src.load(logical);
  });
  return fromChannelsLastBuffer(c.ctx(), c.realize(physT).buffer, t.shape);
}

/// kiln_conv_params_v1's fields for one conv: window `w` (strides, dilations, pads), `groups`,
/// post-op `post` with bounds clip[0], clip[1] when it is a clip; `nest` prefixes every field
/// (a chain's "conv[i]"; "" for a plain conv).
void pushConvParams(std::vector<ExternParam> &p, const Window &w, int64_t groups, int post,
                    const float *clip, const std::string &nest) {
  auto field = [&](ExternParam f) {
    f.nest = nest;
    p.push_back(std::move(f));
  };
  const int spatial = static_cast<int>(w.strides.size());
  field(ExternParam::integer("spatial_rank", spatial));
  field(ExternParam::integer("groups", groups));
  field(ExternParam::integer("post_op", post));
  if (post == KILN_POST_CLIP) {
    field(ExternParam::floating("clip_min", clip[0]));
    field(ExternParam::floating("clip_max", clip[1]));
  }
  for (int d = 0; d < spatial; ++d) {
    field(ExternParam::integer("strides", w.strides[d], d));
    field(ExternParam::integer("dilations", w.dilations[d], d));
    field(ExternParam::symbolic("pads_begin", w.padsBegin[d], d));
    field(ExternParam::symbolic("pads_end", w.padsEnd[d], d));
  }
}

void lowerConv(OpCtx &c) {
  LTensor x = c.in(0), wt = c.in(1);
  if (x.dtype != DType::Float32 || wt.dtype != DType::Float32)
    c.unsupported(fmt::format("Conv on {} (float32 only)", dtypeName(x.dtype)));
  int spatial = x.rank() - 2;
  if (spatial < 1 || spatial > 3) c.unsupported(fmt::format("Conv with {} spatial dims", spatial));
  if (wt.rank() != x.rank())
    fail("{}: the weight has rank {}, the input rank {}; they must be equal", c.node.describe(),
         wt.rank(), x.rank());
  std::vector<sym::Expr> kernel(wt.shape.begin() + 2, wt.shape.end());
  int64_t groups = c.node.attrInt("group", 1);
  Window w = windowGeometry(c, x.shape, kernel, false);
  ir::Shape outShape{x.shape[0], wt.shape[0]};
  for (auto &o : w.out)
    outShape.push_back(o);
  // Activations stay channels-last between convs where the target wants it (oneDNN on x86:
  // a chain of convs runs with no layout conversion at all); elsewhere NC[D]HW.
  bool cl = c.lowerer().target.convChannelsLast;
  loop::Buffer *xb = cl ? asChannelsLast(c, x).channelsLast : c.realize(x).buffer;
  LTensor wr = c.realize(wt);
  loop::Buffer *bias = c.has(2) ? c.realize(c.in(2)).buffer : nullptr;
  loop::Buffer *residual = !c.has(3) ? nullptr
                           : cl      ? asChannelsLast(c, c.in(3)).channelsLast
                                     : c.realize(c.in(3)).buffer;
  loop::Buffer *out =
      c.prog().newBuffer(DType::Float32, cl ? channelsLastShape(outShape) : outShape,
                         loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::Conv);
  k->ext.inputs = {xb, wr.buffer, bias, residual};
  k->ext.outputs = {out};
  k->ext.args = {kindArg(ExternArg::Kind::Site),  externBuffer(xb),  dimsArg(x.shape),
                 externBuffer(wr.buffer),         dimsArg(wt.shape), externBuffer(bias),
                 externBuffer(residual),          externBuffer(out), dimsArg(outShape),
                 kindArg(ExternArg::Kind::Params)};
  if (cl) k->ext.args.push_back(kindArg(ExternArg::Kind::Layout));
  int post = static_cast<int>(c.node.attrInt("_kiln_post", 0));
  std::vector<float> clip;
  if (post == KILN_POST_CLIP) clip = c.node.attrFloats("_kiln_clip");
  pushConvParams(k->ext.params, w, groups, post, clip.data(), "");
  c.out(0, cl ? fromChannelsLastBuffer(c.ctx(), out, outShape) : fromBuffer(c.ctx(), out));
}

/// `_KilnConvChain` (passes/fuse_conv_chain.cpp): inputs x, then weight and bias of the
/// expand (both absent without one), depthwise and project convs, then the residual; the
/// depthwise conv's geometry attributes; every conv's post-op in _kiln_posts / _kiln_clips.
/// One channels-last extern call (kiln_shim_conv_chain_v1).
void lowerConvChain(OpCtx &c) {
  constexpr int kSlots = 3; // expand, depthwise, project
  KILN_ASSERT(c.numInputs() == 2 + 2 * kSlots && c.lowerer().target.convChannelsLast,
              "{}: a conv chain needs 8 inputs and channels-last convs", c.node.describe());
  const int first = c.has(1) ? 0 : 1; // the first slot present
  const int count = kSlots - first;
  LTensor x = c.in(0);
  LTensor dwWeight = c.in(3);
  std::vector<sym::Expr> kernel(dwWeight.shape.begin() + 2, dwWeight.shape.end());
  Window w = windowGeometry(c, x.shape, kernel, false);
  ir::Shape outShape{x.shape[0], c.in(5).shape[0], w.out[0], w.out[1]};
  loop::Buffer *xb = asChannelsLast(c, x).channelsLast;
  std::vector<loop::Buffer *> weights, biases;
  std::vector<sym::Expr> wDims;
  for (int i = first; i < kSlots; ++i) {
    LTensor wt = c.realize(c.in(1 + 2 * i));
    weights.push_back(wt.buffer);
    wDims.insert(wDims.end(), wt.shape.begin(), wt.shape.end());
    biases.push_back(c.has(2 + 2 * i) ? c.realize(c.in(2 + 2 * i)).buffer : nullptr);
  }
  loop::Buffer *residual = c.has(7) ? asChannelsLast(c, c.in(7)).channelsLast : nullptr;
  loop::Buffer *out = c.prog().newBuffer(DType::Float32, channelsLastShape(outShape),
                                         loop::BufferKind::Intermediate, "");
  loop::Kernel *k = c.externKernel(loop::ExternKind::ConvChain);
  k->ext.inputs = {xb, residual};
  for (int i = 0; i < count; ++i) {
    k->ext.inputs.push_back(weights[i]);
    k->ext.inputs.push_back(biases[i]);
  }
  k->ext.outputs = {out};
  ExternArg wArg = kindArg(ExternArg::Kind::Buffers), bArg = kindArg(ExternArg::Kind::Buffers),
            wDimsArg = dimsArg(wDims);
  wArg.bufs = weights;
  bArg.bufs = biases; // an all-null array: the shim takes no NULL array
  k->ext.args = {kindArg(ExternArg::Kind::Site),
                 externBuffer(xb),
                 dimsArg(x.shape),
                 wArg,
                 wDimsArg,
                 bArg,
                 externBuffer(residual),
                 externBuffer(out),
                 dimsArg(outShape),
                 kindArg(ExternArg::Kind::Params)};
  auto &p = k->ext.params;
  p.push_back(ExternParam::integer("count", count));
  std::vector<int64_t> posts = c.node.attrInts("_kiln_posts");
  std::vector<float> clips = c.node.attrFloats("_kiln_clips");
  KILN_ASSERT(posts.size() == kSlots && clips.size() == 2 * kSlots, "{}: malformed post-ops",
              c.node.describe());
  // The 1x1 convs: stride 1, no pads.
  const sym::Expr zero = c.ctx().constant(0);
  const Window pointwise{{zero, zero}, {zero, zero}, {}, {1, 1}, {1, 1}};
  for (int i = first; i < kSlots; ++i) {
    const bool dw = i == 1;
    pushConvParams(p, dw ? w : pointwise, dw ? c.node.attrInt("group", 1) : 1,
                   static_cast<int>(posts[i]), &clips[2 * i], fmt::format("conv[{}]", i - first));
  }
  c.out(0, fromChannelsLastBuffer(c.ctx(), out, outShape));
}

/// Matmul of any other numeric type as a generated Sum reduction over K (float16/bfloat16
/// accumulate in float32, integers in their own type as ONNX's reference does):
/// alpha · a [.., M, K] x b [.., K, N] (+ beta · bias broadcast to [.., M, N]).
LTensor genericMatMul(OpCtx &c, LTensor a, LTensor b, std::optional<LTensor> bias, bool transA,
                      bool transB, double alpha, double beta) {
  sym::Context &ctx = c.ctx();
  requireSameDtype(c, a, b, "operands");
  if (a.dtype == DType::Bool || a.dtype == DType::String)
    c.unsupported(fmt::format("MatMul on {}", dtypeName(a.dtype)));
  KILN_ASSERT(c.node.attrInt("_kiln_post", 0) == 0 && !c.has(3),
              "{}: fused epilogue on a {} matmul", c.node.describe(), dtypeName(a.dtype));
  bool vecA = a.rank() == 1, vecB = b.rank() == 1;
  if (vecA) a = reshapeView(ctx, a, {ctx.constant(1), a.shape[0]});
  if (vecB) b = reshapeView(ctx, b, {b.shape[0], ctx.constant(1)});
  ir::Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  ir::Shape batch = broadcastShapes(ba, bb, c.node.describe());
  int nb = static_cast<int>(batch.size());
  sym::Expr m = transA ? a.shape[a.rank() - 1] : a.shape[a.rank() - 2];
  sym::Expr k = transA ? a.shape[a.rank() - 2] : a.shape[a.rank() - 1];
  sym::Expr kb = transB ? b.shape[b.rank() - 1] : b.shape[b.rank() - 2];
  sym::Expr n = transB ? b.shape[b.rank() - 2] : b.shape[b.rank() - 1];
  c.guardEqual(k, kb, "MatMul: the inner dims must agree");
  DType t = a.dtype, acc = isFloat(t) ? (t == DType::Float64 ? t : DType::Float32) : t;
  auto operand = [&](const LTensor &x, bool trans, sym::Expr rows, sym::Expr cols) {
    ir::Shape full = batch;
    full.push_back(trans ? cols : rows);
    full.push_back(trans ? rows : cols);
    sym::Context *cx = &ctx;
    return std::function<VRef(const Index &, sym::Expr, sym::Expr)>(
        [=](const Index &i, sym::Expr r, sym::Expr q) {
          Index idx(i.begin(), i.begin() + nb);
          idx.push_back(trans ? q : r);
          idx.push_back(trans ? r : q);
          return loop::cast(loadBroadcast(*cx, x, full, idx), acc);
        });
  };
  auto la = operand(a, transA, m, k), lb = operand(b, transB, k, n);
  ir::Shape prodShape = batch;
  prodShape.insert(prodShape.end(), {m, n, k});
  LTensor prod = c.pointwise(acc, prodShape, [=](const Index &i) {
    return loop::binary(BinaryOp::Mul, la(i, i[nb], i[nb + 2]), lb(i, i[nb + 2], i[nb + 1]));
  });
  LTensor dot = c.reduce(prod, {nb + 2}, false, loop::ReduceOp::Sum, acc);
  ir::Shape outShape = batch;
  outShape.insert(outShape.end(), {m, n});
  sym::Context *cx = &ctx;
  LTensor r = c.pointwise(t, outShape, [=](const Index &i) {
    VRef v = dot.load(i);
    if (alpha != 1.0) v = loop::binary(BinaryOp::Mul, v, loop::constant(acc, alpha));
    if (bias) {
      VRef bv = loop::cast(loadBroadcast(*cx, *bias, outShape, i), acc);
      if (beta != 1.0) bv = loop::binary(BinaryOp::Mul, bv, loop::constant(acc, beta));
      v = loop::binary(BinaryOp::Add, v, bv);
    }
    return loop::cast(v, t);
  });
  ir::Shape finalShape = batch;
  if (!vecA) finalShape.push_back(m);
  if (!vecB) finalShape.push_back(n);
  if (vecA || vecB) r = reshapeView(ctx, r, finalShape);
  return r;
}

/// Batched matmul through the shim: a [.., M, K] x b [.., K, N] (+ row bias) (+ the fused
/// residual, the node's input 3, of the output's shape); other element types take
/// genericMatMul.
LTensor matmul(OpCtx &c, LTensor a, LTensor b, std::optional<LTensor> bias, bool transA,
               bool transB, double alpha, double beta, int addendKind) {
  sym::Context &ctx = c.ctx();
  if (a.rank() == 0 || b.rank() == 0)
    fail("{}: MatMul operands need at least one dim, got ranks {} and {}", c.node.describe(),
         a.rank(), b.rank());
  if (a.dtype != DType::Float32 || b.dtype != DType::Float32)
    return genericMatMul(c, a, b, bias, transA, transB, alpha, beta);
  bool vecA = a.rank() == 1, vecB = b.rank() == 1;
  if (vecA) a = reshapeView(ctx, a, {ctx.constant(1), a.shape[0]});
  if (vecB) b = reshapeView(ctx, b, {b.shape[0], ctx.constant(1)});
  ir::Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  ir::Shape batch = broadcastShapes(ba, bb, c.node.describe());
  sym::Expr m = transA ? a.shape[a.rank() - 1] : a.shape[a.rank() - 2];
  sym::Expr k = transA ? a.shape[a.rank() - 2] : a.shape[a.rank() - 1];
  sym::Expr kb = transB ? b.shape[b.rank() - 1] : b.shape[b.rank() - 2];
  sym::Expr n = transB ? b.shape[b.rank() - 2] : b.shape[b.rank() - 1];
  if (k.isConst() && kb.isConst() && k->value != kb->value)
    fail("{}: inner dims differ ({} vs {})", c.node.describe(), k->value, kb->value);
  sym::Expr nbatch = product(ctx, batch, 0, batch.size());
  // An operand whose batch dims are all 1 is broadcast with stride 0; any other
  // broadcast is materialised so one strided batch loop covers it.
  auto prepare = [&](LTensor t, const ir::Shape &own) -> std::pair<LTensor, sym::Expr> {
    sym::Expr ownBatch = product(ctx, own, 0, own.size());
    sym::Expr mat = t.shape[t.rank() - 1] * t.shape[t.rank() - 2];
    // A view that reads one buffer in order (the attention's heads merged by a transpose and
    // a reshape) is that buffer: no copy.
    auto contiguous = [&](const LTensor &v) {
      LTensor r = v;
      r.buffer = contiguousBuffer(ctx, v);
      return r.buffer ? r : c.realize(v);
    };
    if (ownBatch.isConst(1)) return {contiguous(t), ctx.constant(0)};
    if (sym::provablyEqual(ownBatch, nbatch) && own.size() == batch.size())
      return {contiguous(t), mat};
    ir::Shape full = batch;
    full.push_back(t.shape[t.rank() - 2]);
    full.push_back(t.shape[t.rank() - 1]);
    sym::Context *cx = &ctx;
    LTensor e =
        c.pointwise(t.dtype, full, [=](const Index &i) { return loadBroadcast(*cx, t, full, i); });
    return {c.realize(e), mat};
  };
  auto [ar, strideA] = prepare(a, ba);
  auto [br, strideB] = prepare(b, bb);
  ir::Shape outShape = batch;
  outShape.push_back(m);
  outShape.push_back(n);
  loop::Buffer *addend = nullptr;
  if (bias) {
    if (addendKind == 2) {
      ir::Shape mn{m, n};
      sym::Context *cx = &ctx;
      LTensor bt = *bias;
      addend = c.realize(c.pointwise(bt.dtype, mn, [=](const Index &i) {
                  return loadBroadcast(*cx, bt, mn, i);
                })).buffer;
    } else {
      addend = c.realize(*bias).buffer;
    }
  }
  // passes/fuse_epilogues.cpp fuses a residual only where its shape is the output's, and
  // only with operands of rank >= 2 (so the output is not reshaped after the call).
  loop::Buffer *residual = nullptr;
  if (c.has(3)) {
    KILN_ASSERT(!vecA && !vecB && addendKind != 2 && c.in(3).rank() == int(outShape.size()),
                "{}: fused residual on a matmul that cannot take it", c.node.describe());
    residual = c.realize(c.in(3)).buffer;
  }
  loop::Buffer *out =
      c.prog().newBuffer(DType::Float32, outShape, loop::BufferKind::Intermediate, "");
  loop::Kernel *kn = c.externKernel(loop::ExternKind::MatMul);
  kn->ext.inputs = {ar.buffer, br.buffer, addend, residual};
  kn->ext.outputs = {out};
  // The residual argument is dropped again where the call can be kiln_shim_matmul_v1
  // (sched/legalize_externs.cpp).
  kn->ext.args = {kindArg(ExternArg::Kind::Site),  externBuffer(ar.buffer),
                  externBuffer(br.buffer),         externBuffer(addend),
                  externBuffer(residual),          externBuffer(out),
                  kindArg(ExternArg::Kind::Params)};
  auto &p = kn->ext.params;
  p.push_back(ExternParam::symbolic("batch", nbatch));
  p.push_back(ExternParam::symbolic("m", m));
  p.push_back(ExternParam::symbolic("n", n));
  p.push_back(ExternParam::symbolic("k", k));
  p.push_back(ExternParam::symbolic("a_batch_stride", strideA));
  p.push_back(ExternParam::symbolic("b_batch_stride", strideB));
  p.push_back(ExternParam::symbolic("c_batch_stride", m * n));
  p.push_back(ExternParam::symbolic("lda", transA ? m : k));
  p.push_back(ExternParam::symbolic("ldb", transB ? k : n));
  p.push_back(ExternParam::symbolic("ldc", n));
  p.push_back(ExternParam::integer("trans_a", transA ? 1 : 0));
  p.push_back(ExternParam::integer("trans_b", transB ? 1 : 0));
  p.push_back(ExternParam::floating("alpha", alpha));
  p.push_back(ExternParam::floating("beta", beta));
  p.push_back(ExternParam::integer("addend_kind", addend ? addendKind : 0));
  int post = static_cast<int>(c.node.attrInt("_kiln_post", 0));
  p.push_back(ExternParam::integer("post_op", post));
  if (post == KILN_POST_CLIP) {
    auto clip = c.node.attrFloats("_kiln_clip");
    p.push_back(ExternParam::floating("clip_min", clip[0]));
    p.push_back(ExternParam::floating("clip_max", clip[1]));
  }
  LTensor r = fromBuffer(ctx, out);
  ir::Shape finalShape = batch;
  if (!vecA) finalShape.push_back(m);
  if (!vecB) finalShape.push_back(n);
  if (vecA || vecB) r = reshapeView(ctx, r, finalShape);
  return r;
}

void lowerMatMul(OpCtx &c) {
  std::optional<LTensor> bias;
  if (c.has(2)) bias = c.in(2);
  c.out(0, matmul(c, c.in(0), c.in(1), bias, false, false, 1.0, 1.0, 1));
}

void lowerGemm(OpCtx &c) {
  bool ta = c.node.attrInt("transA", 0), tb = c.node.attrInt("transB", 0);
  double alpha = c.node.attrFloat("alpha", 1.0f), beta = c.node.attrFloat("beta", 1.0f);
  for (int i = 0; i < 2; ++i)
    if (c.in(i).rank() != 2)
      fail("{}: input {} must be a matrix (rank 2), got rank {}", c.node.describe(), i,
           c.in(i).rank());
  std::optional<LTensor> bias;
  int kind = 1;
  if (c.has(2) && beta != 0.0) {
    bias = c.in(2);
    LTensor b = c.in(1);
    sym::Expr n = tb ? b.shape[0] : b.shape[1];
    bool row = (bias->rank() == 1 && sym::provablyEqual(bias->shape[0], n) && beta == 1.0) ||
               (bias->rank() == 2 && bias->shape[0].isConst(1) &&
                sym::provablyEqual(bias->shape[1], n) && beta == 1.0);
    if (row && bias->rank() == 2) bias = reshapeView(c.ctx(), *bias, {n});
    kind = row ? 1 : 2;
  }
  c.out(0, matmul(c, c.in(0), c.in(1), bias, ta, tb, alpha, beta, kind));
}

/// Training-mode BatchNormalization (opset 14+): normalizes with the batch statistics and
/// outputs the updated running mean and variance (population variance, as the reference).
void batchNormTraining(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1), bias = c.in(2), mean = c.in(3), var = c.in(4);
  if (x.rank() < 2) fail("{}: training mode needs an input of rank >= 2", c.node.describe());
  double eps = c.node.attrFloat("epsilon", 1e-5f), mom = c.node.attrFloat("momentum", 0.9f);
  DType t = x.dtype, acc = t == DType::Float64 ? DType::Float64 : DType::Float32;
  LTensor src = x.cheap ? x : c.realize(x);
  std::vector<int> axes{0};
  for (int d = 2; d < x.rank(); ++d)
    axes.push_back(d);
  VRef count =
      loop::cast(loop::symInt(x.shape[0] * product(c.ctx(), x.shape, 2, x.shape.size())), acc);
  auto at = [](const LTensor &v, sym::Expr ch, DType d) { return loop::cast(v.load({ch}), d); };
  auto perChannel = [&](const LTensor &sum) {
    return c.realize(c.pointwise(acc, sum.shape, [=](const Index &i) {
      return loop::binary(BinaryOp::Div, sum.load(i), count);
    }));
  };
  LTensor bmean = perChannel(c.reduce(src, axes, false, ReduceOp::Sum, acc));
  LTensor sq = c.pointwise(acc, x.shape, [=](const Index &i) {
    VRef d = loop::binary(BinaryOp::Sub, loop::cast(src.load(i), acc), bmean.load({i[1]}));
    return loop::binary(BinaryOp::Mul, d, d);
  });
  LTensor bvar = perChannel(c.reduce(sq, axes, false, ReduceOp::Sum, acc));
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    VRef inv =
        loop::binary(BinaryOp::Div, at(scale, i[1], acc),
                     loop::unary(UnaryOp::Sqrt, loop::binary(BinaryOp::Add, bvar.load({i[1]}),
                                                             loop::constant(acc, eps))));
    VRef d = loop::binary(BinaryOp::Sub, loop::cast(src.load(i), acc), bmean.load({i[1]}));
    return loop::cast(
        loop::binary(BinaryOp::Add, loop::binary(BinaryOp::Mul, d, inv), at(bias, i[1], acc)), t);
  }));
  // running = input * momentum + batch * (1 - momentum)
  auto running = [&](const LTensor &in, const LTensor &batch) {
    DType rt = in.dtype;
    return c.pointwise(rt, in.shape, [=](const Index &i) {
      VRef r = loop::binary(
          BinaryOp::Add, loop::binary(BinaryOp::Mul, at(in, i[0], acc), loop::constant(acc, mom)),
          loop::binary(BinaryOp::Mul, batch.load(i), loop::constant(acc, 1.0 - mom)));
      return loop::cast(r, rt);
    });
  };
  c.out(1, running(mean, bmean));
  c.out(2, running(var, bvar));
}

void lowerBatchNorm(OpCtx &c) {
  LTensor x = c.in(0), scale = c.in(1), bias = c.in(2), mean = c.in(3), var = c.in(4);
  requireFloat(c, x, "BatchNormalization input");
  if (x.rank() == 0) fail("{}: the input needs a channel dim", c.node.describe());
  const sym::Expr channels = x.shape[x.rank() > 1 ? 1 : 0];
  // One value per channel each; ONNX lets the parameters have other float types than X.
  for (auto [p, name] :
       {std::pair{&scale, "scale"}, {&bias, "B"}, {&mean, "mean"}, {&var, "var"}}) {
    requireFloat(c, *p, "BatchNormalization parameter");
    requireShape(c, *p, {channels}, name);
  }
  if (c.node.opset >= 14 && c.node.attrInt("training_mode", 0) != 0) {
    batchNormTraining(c);
    return;
  }
  for (size_t k = 1; k < c.node.outputs.size(); ++k)
    if (c.node.outputs[k] && !c.node.outputs[k]->name.empty())
      c.unsupported(c.node.opset < 14
                        ? fmt::format("BatchNormalization statistics output {} before opset 14", k)
                        : fmt::format("BatchNormalization output {} with training_mode 0", k));
  double eps = c.node.attrFloat("epsilon", 1e-5f);
  DType t = x.dtype;
  c.out(0, c.pointwise(t, x.shape, [=](const Index &i) {
    Index ch{x.rank() > 1 ? i[1] : i[0]};
    auto at = [&](const LTensor &p) { return loop::cast(p.load(ch), t); };
    VRef inv = loop::binary(
        BinaryOp::Div, at(scale),
        loop::unary(UnaryOp::Sqrt, loop::binary(BinaryOp::Add, at(var), loop::constant(t, eps))));
    return loop::binary(
        BinaryOp::Add,
        loop::binary(BinaryOp::Mul, loop::binary(BinaryOp::Sub, x.load(i), at(mean)), inv),
        at(bias));
  }));
}

} // namespace

void registerNNOps(std::vector<OpInfo> &r) {
  r.insert(r.end(), {
                        {"Conv", 1, lowerConv},
                        {"_KilnConvChain", 1, lowerConvChain},
                        {"MatMul", 1, lowerMatMul},
                        {"Gemm", 1, lowerGemm},
                        {"BatchNormalization", 1, lowerBatchNorm},
                    });
}

} // namespace kiln::lower
