#include "passes/match_gelu.h"
#include "passes/passes.h"

#include "kiln/shim.h"

#include <limits>

namespace kiln::passes {

ir::Node *soleUser(const ir::Value *v) {
  if (!v || v->users.size() != 1 || v->isGraphOutput) return nullptr;
  return v->users[0];
}

namespace {

bool scalarConst(const ir::Value *v, float &out) {
  if (!v || !v->data || v->data->dtype != DType::Float32 || v->data->numel() != 1) return false;
  out = v->data->as<float>()[0];
  return true;
}

/// Moves `producer` into `consumer`'s place (consumer's outputs, producer's op), so
/// every input of both is available; the producer node dies.
void absorb(ir::Node &producer, ir::Node &consumer) {
  consumer.op = producer.op;
  consumer.attrs.insert(producer.attrs.begin(), producer.attrs.end());
  consumer.opset = producer.opset;
  consumer.name = producer.name;
  producer.dead = true;
}

bool sameShape(const ir::Value *a, const ir::Value *b) {
  return a->shape.size() == b->shape.size() &&
         std::equal(a->shape.begin(), a->shape.end(), b->shape.begin());
}

} // namespace

/// Post-op code for a Relu/Clip node with constant bounds (0 if it is neither).
int activationPostOp(const ir::Node &act, float &lo, float &hi, bool clip) {
  lo = -std::numeric_limits<float>::infinity();
  hi = -lo;
  if (act.op == "Relu") return KILN_POST_RELU;
  if (act.op != "Clip" || !clip) return KILN_POST_NONE;
  if (act.opset < 11) {
    lo = act.attrFloat("min", lo);
    hi = act.attrFloat("max", hi);
    return KILN_POST_CLIP;
  }
  if ((act.input(1) && !scalarConst(act.input(1), lo)) ||
      (act.input(2) && !scalarConst(act.input(2), hi)))
    return KILN_POST_NONE;
  return KILN_POST_CLIP;
}

void setPostOp(ir::Node &n, int post, float lo, float hi) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::Int;
  a.i = post;
  n.attrs["_kiln_post"] = a;
  if (post == KILN_POST_CLIP) {
    ir::Attribute fl;
    fl.kind = ir::Attribute::Kind::Floats;
    fl.floats = {lo, hi};
    n.attrs["_kiln_clip"] = fl;
  }
}

/// Gemm's C is absent or a row (length N, beta 1): a residual can join it (the shims take
/// one row addend beside the residual, but not a full addend).
bool gemmAddendIsRow(const ir::Node &gemm) {
  const ir::Value *cv = gemm.input(2);
  if (!cv || gemm.attrFloat("beta", 1.0f) == 0.0f) return true;
  const ir::Value *w = gemm.input(1);
  if (!w || w->rank() != 2 || gemm.attrFloat("beta", 1.0f) != 1.0f) return false;
  const sym::Expr &n = w->shape[gemm.attrInt("transB", 0) ? 0 : 1];
  return (cv->rank() == 1 && sym::provablyEqual(cv->shape[0], n)) ||
         (cv->rank() == 2 && cv->shape[0].isConst(1) && sym::provablyEqual(cv->shape[1], n));
}

/// mm's output + r (r of the output's shape, float32, not mm's own output) as the matmul's
/// residual input (input 3). r is only read, so its other users are unaffected; operands of
/// rank < 2 (reshaped outputs) keep the Add.
ir::Node *fuseResidual(ir::Node &mm) {
  ir::Node *user = soleUser(mm.outputs[0]);
  if (!user || user->op != "Add" || user->inputs.size() != 2 || mm.inputs.size() > 3)
    return nullptr;
  ir::Value *out = mm.outputs[0];
  ir::Value *other = user->input(0) == out ? user->input(1) : user->input(0);
  const ir::Value *a = mm.input(0), *b = mm.input(1);
  if (!other || other == out || other->dtype != DType::Float32 || !sameShape(other, out) ||
      !sameShape(other, user->outputs[0]) || !a || !b || a->rank() < 2 || b->rank() < 2 ||
      (mm.op == "Gemm" && !gemmAddendIsRow(mm)))
    return nullptr;
  std::vector<ir::Value *> ins = mm.inputs;
  ins.resize(3, nullptr);
  ins.push_back(other);
  user->inputs = ins;
  absorb(mm, *user);
  return user;
}

/// The activation after `fused` as a post-op the target takes: Relu/Clip, or GELU (the op
/// or its written-out formula, passes/match_gelu.h). The node computing the activation's
/// result becomes the matmul; the others die.
void fuseActivation(ir::Node &fused, const sched::Target &t) {
  if (ir::Node *user = soleUser(fused.outputs[0])) {
    float lo, hi;
    if (int post = activationPostOp(*user, lo, hi, t.fuseClipEpilogue)) {
      user->inputs = fused.inputs;
      absorb(fused, *user);
      setPostOp(*user, post, lo, hi);
      return;
    }
  }
  GeluMatch gelu = matchGelu(fused.outputs[0]);
  bool wanted = (gelu.postOp == KILN_POST_GELU_ERF && t.fuseGeluErfEpilogue) ||
                (gelu.postOp == KILN_POST_GELU_TANH && t.fuseGeluTanhEpilogue);
  if (!wanted) return;
  for (ir::Node *n : gelu.nodes)
    n->dead = n != gelu.last;
  gelu.last->inputs = fused.inputs;
  gelu.last->attrs.clear(); // a Gelu op's `approximate` is now in the post-op
  absorb(fused, *gelu.last);
  setPostOp(*gelu.last, gelu.postOp, 0.f, 0.f);
}

/// MatMul (2-D weight) + Add(1-D constant bias of length N) [+ Add(residual)] [+ activation]
/// → one matmul with a row addend, a residual and a post-op; Gemm likewise (its C is the bias).
void fuseMatMulEpilogues(ir::Graph &g, const sched::Target &t) {
  for (auto &np : g.nodes) {
    ir::Node &mm = *np;
    if (mm.dead || (mm.op != "MatMul" && mm.op != "Gemm") || mm.outputs.size() != 1 ||
        mm.outputs[0]->dtype != DType::Float32 || mm.hasAttr("_kiln_post") || mm.input(3))
      continue;
    ir::Node *fused = &mm;
    ir::Node *user = soleUser(mm.outputs[0]);
    if (user && mm.op == "MatMul" && mm.inputs.size() == 2 && user->op == "Add") {
      ir::Value *other = user->input(0) == mm.outputs[0] ? user->input(1) : user->input(0);
      const ir::Value *w = mm.input(1);
      bool rowBias = other && other->data && other->rank() == 1 && w && w->rank() == 2 &&
                     other->dtype == DType::Float32 &&
                     sym::provablyEqual(other->shape[0], w->shape[1]);
      if (rowBias) {
        user->inputs = {mm.input(0), mm.input(1), other};
        absorb(mm, *user);
        fused = user;
      }
    }
    if (t.fuseMatMulResidual)
      if (ir::Node *withResidual = fuseResidual(*fused)) fused = withResidual;
    fuseActivation(*fused, t);
  }
}

void fuseExternEpilogues(ir::Graph &g, const sched::Target &t) {
  const bool clip = t.fuseClipEpilogue;
  fuseMatMulEpilogues(g, t);
  for (auto &np : g.nodes) {
    ir::Node &conv = *np;
    if (conv.dead || conv.op != "Conv" || conv.outputs.size() != 1 ||
        conv.outputs[0]->dtype != DType::Float32 || conv.hasAttr("_kiln_post"))
      continue;
    ir::Node *user = soleUser(conv.outputs[0]);
    if (!user) continue;
    ir::Node *fused = &conv;
    // Residual add: conv(x) + r, same shape, becomes oneDNN's sum post-op.
    if (user->op == "Add" && conv.inputs.size() <= 3) {
      ir::Value *other = user->input(0) == conv.outputs[0] ? user->input(1) : user->input(0);
      if (!other || other == conv.outputs[0] || !sameShape(other, conv.outputs[0]) ||
          other->dtype != DType::Float32)
        continue;
      std::vector<ir::Value *> ins = conv.inputs;
      ins.resize(3, nullptr);
      ins.push_back(other);
      user->inputs = ins;
      absorb(conv, *user);
      fused = user;
      user = soleUser(user->outputs[0]);
      if (!user) continue;
    }
    float lo, hi;
    int post = activationPostOp(*user, lo, hi, clip);
    if (!post) continue;
    user->inputs = fused->inputs;
    absorb(*fused, *user);
    setPostOp(*user, post, lo, hi);
  }
  g.compact();
}

} // namespace kiln::passes
