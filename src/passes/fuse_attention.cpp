#include "passes/passes.h"

#include <cmath>

namespace kiln::passes {

namespace {

bool scalarF32(const ir::Value *v, float &out) {
  if (!v || !v->data || v->data->dtype != DType::Float32 || v->data->numel() != 1) return false;
  out = v->data->as<float>()[0];
  return true;
}

bool lastAxisSoftmax(const ir::Node &n) {
  if (n.op != "Softmax" || n.outputs.size() != 1) return false;
  int rank = n.outputs[0]->rank();
  int64_t axis = n.attrInt("axis", n.opset < 13 ? 1 : -1);
  // Before opset 13 Softmax flattens from `axis`; for the last axis both rules agree.
  return axis == -1 || axis == rank - 1;
}

/// The shim reads a mask through strides, broadcasting only dims that are 1: each dim of
/// `m` (aligned to the right) must be 1, provably the scores' dim (the MatMul's, not the
/// broadcast sum's, which takes a constant dim over a symbolic one), or symbolic where the
/// scores' dim is too. The last case is GPT-2's causal mask, a slice of a [1024, 1024]
/// buffer whose dims are min(S, 1024): like any symbolic broadcast, it must be 1 or the
/// scores' dim at run time, and lower/ops_attention.cpp gives it a stride that is 0 when 1.
bool maskBroadcasts(const ir::Value *m, const ir::Value *scores) {
  int r = m->rank(), rs = scores->rank();
  if (r > rs) return false;
  for (int d = 0; d < r; ++d) {
    const sym::Expr &md = m->shape[d], &sd = scores->shape[rs - r + d];
    if (md.isConst(1) || sym::provablyEqual(md, sd)) continue;
    if (md.isConst() || sd.isConst()) return false;
  }
  return true;
}

/// v is MatMul(Q, Kᵀ), possibly multiplied or divided by a scalar constant.
bool isScores(const ir::Value *v) {
  const ir::Node *n = v ? v->producer : nullptr;
  if (!n) return false;
  if (n->op == "MatMul") return true;
  float c;
  if (n->op != "Mul" && n->op != "Div") return false;
  const ir::Value *other = scalarF32(n->input(1), c)                     ? n->input(0)
                           : n->op == "Mul" && scalarF32(n->input(0), c) ? n->input(1)
                                                                         : nullptr;
  return other && other->producer && other->producer->op == "MatMul";
}

/// What lies between the scaled scores and the Softmax: nothing, `scores + mask` (BERT's
/// additive mask), or `Where(cond, scores, fill)` with a finite scalar fill (GPT-2's causal
/// mask; fused as the additive mask `cond ? 0 : fill`, which gives the same softmax because
/// a finite score plus a huge negative fill rounds to the fill).
struct MaskMatch {
  ir::Node *node = nullptr;    // the Add or Where (nullptr: no mask)
  ir::Value *scores = nullptr; // its scores operand
  ir::Value *mask = nullptr;   // additive mask, or Where's condition
  bool where = false;
  float fill = 0.f;
};

MaskMatch matchMask(ir::Value *softmaxIn) {
  MaskMatch mm;
  ir::Node *n = softmaxIn->producer;
  mm.scores = softmaxIn;
  if (!n || n->outputs.size() != 1) return mm;
  if (n->op == "Add" && n->inputs.size() == 2) {
    for (int i = 0; i < 2; ++i) {
      ir::Value *s = n->input(i), *m = n->input(1 - i);
      if (!isScores(s) || s->rank() != 4 || m->dtype != DType::Float32 || !maskBroadcasts(m, s))
        continue;
      return {n, s, m, false, 0.f};
    }
    return mm;
  }
  float fill;
  if (n->op == "Where" && n->inputs.size() == 3 && isScores(n->input(1)) &&
      n->input(1)->rank() == 4 && n->input(0)->dtype == DType::Bool &&
      maskBroadcasts(n->input(0), n->input(1)) && scalarF32(n->input(2), fill) &&
      std::isfinite(fill))
    return {n, n->input(1), n->input(0), true, fill};
  return mm;
}

/// Head dims a device's attention kernel takes: static and at most maxHeadDim (0: any).
bool headDimFits(const ir::Value *x, int maxHeadDim) {
  if (maxHeadDim == 0) return true;
  const sym::Expr &d = x->shape.back();
  return d.isConst() && d->value <= maxHeadDim;
}

} // namespace

void fuseAttention(ir::Graph &g, int maxHeadDim) {
  for (auto &np : g.nodes) {
    ir::Node &sm = *np;
    if (sm.dead || !lastAxisSoftmax(sm) || sm.outputs[0]->dtype != DType::Float32 ||
        (sm.outputs[0]->rank() != 4 && sm.outputs[0]->rank() != 3))
      continue;
    ir::Node *pv = soleUser(sm.outputs[0]);
    const int rank = sm.outputs[0]->rank(); // [B, H, S, D], or [B*H, S, D] (batched matmul)
    if (!pv || pv->op != "MatMul" || pv->input(0) != sm.outputs[0] || pv->input(1)->rank() != rank)
      continue;
    if (soleUser(sm.input(0)) != &sm) continue;
    MaskMatch mm = matchMask(sm.input(0));
    ir::Node *scoresUser = mm.node ? mm.node : &sm;
    ir::Value *scores = mm.scores;
    if (mm.node && soleUser(scores) != mm.node) continue;
    ir::Node *scaleNode = scores->producer;
    float scale = 1.0f;
    ir::Node *qk = scaleNode;
    if (scaleNode && (scaleNode->op == "Mul" || scaleNode->op == "Div")) {
      float c;
      ir::Value *a = scaleNode->input(0), *b = scaleNode->input(1);
      ir::Value *other = nullptr;
      if (scalarF32(b, c))
        other = a;
      else if (scaleNode->op == "Mul" && scalarF32(a, c))
        other = b;
      if (!other || c == 0.0f) continue;
      scale = scaleNode->op == "Mul" ? c : 1.0f / c;
      qk = other->producer;
      if (soleUser(other) != scaleNode) continue;
    } else {
      scaleNode = nullptr;
    }
    if (soleUser(scores) != scoresUser) continue;
    if (!qk || qk->op != "MatMul" || qk->input(0)->rank() != rank || qk->input(1)->rank() != rank)
      continue;
    // pv becomes the fused node: it runs after every input is available.
    ir::Value *q = qk->input(0), *kt = qk->input(1), *v = pv->input(1);
    if (!headDimFits(q, maxHeadDim) || !headDimFits(v, maxHeadDim)) continue;
    pv->op = "_KilnSDPA";
    pv->inputs = {q, kt, v};
    ir::Attribute s;
    s.kind = ir::Attribute::Kind::Float;
    s.f = scale;
    pv->attrs["scale"] = s;
    if (mm.node) {
      pv->inputs.push_back(mm.mask);
      ir::Attribute kind, fill;
      kind.kind = ir::Attribute::Kind::Int;
      kind.i = mm.where ? 2 : 1; // 1: additive mask, 2: Where condition with `fill`
      fill.kind = ir::Attribute::Kind::Float;
      fill.f = mm.fill;
      pv->attrs["mask_kind"] = kind;
      pv->attrs["mask_fill"] = fill;
      mm.node->dead = true;
    }
    sm.dead = true;
    qk->dead = true;
    if (scaleNode) scaleNode->dead = true;
  }
  g.compact();
}

} // namespace kiln::passes
