#include "passes/passes.h"

#include <cmath>

namespace kiln::passes {

namespace {

ir::Node *soleUserOf(const ir::Value *v) {
  if (!v || v->users.size() != 1 || v->isGraphOutput) return nullptr;
  return v->users[0];
}

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
    ir::Node *pv = soleUserOf(sm.outputs[0]);
    const int rank = sm.outputs[0]->rank(); // [B, H, S, D], or [B*H, S, D] (batched matmul)
    if (!pv || pv->op != "MatMul" || pv->input(0) != sm.outputs[0] || pv->input(1)->rank() != rank)
      continue;
    ir::Value *scores = sm.input(0);
    ir::Node *scaleNode = scores->producer;
    float scale = 1.0f;
    ir::Node *qk = scaleNode;
    if (scaleNode && (scaleNode->op == "Mul" || scaleNode->op == "Div") &&
        soleUserOf(scores) == &sm) {
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
      if (soleUserOf(other) != scaleNode) continue;
    } else {
      scaleNode = nullptr;
      if (soleUserOf(scores) != &sm) continue;
    }
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
    sm.dead = true;
    qk->dead = true;
    if (scaleNode) scaleNode->dead = true;
  }
  g.compact();
}

} // namespace kiln::passes
