#include "passes/passes.h"

#include <cmath>

namespace kiln::passes {

namespace {

bool isF32Const(const ir::Value *v) {
  return v && v->data && v->data->dtype == DType::Float32;
}

std::shared_ptr<ir::TensorData> f32(std::vector<int64_t> dims) {
  auto t = std::make_shared<ir::TensorData>();
  t->dtype = DType::Float32;
  t->dims = std::move(dims);
  t->bytes.resize(static_cast<size_t>(t->numel()) * 4);
  return t;
}

} // namespace

void foldBatchNormIntoConv(ir::Graph &g) {
  for (auto &np : g.nodes) {
    ir::Node &bn = *np;
    if (bn.dead || bn.op != "BatchNormalization" || bn.attrInt("training_mode", 0) != 0) continue;
    ir::Value *x = bn.input(0);
    if (!x || !x->producer || x->producer->op != "Conv" || x->users.size() != 1 ||
        x->isGraphOutput || bn.outputs.size() != 1)
      continue;
    ir::Node &conv = *x->producer;
    ir::Value *w = conv.input(1), *b = conv.input(2);
    ir::Value *scale = bn.input(1), *bias = bn.input(2), *mean = bn.input(3), *var = bn.input(4);
    if (!isF32Const(w) || (b && !isF32Const(b)) || !isF32Const(scale) || !isF32Const(bias) ||
        !isF32Const(mean) || !isF32Const(var))
      continue;
    int64_t outC = w->data->dims[0];
    if (scale->data->numel() != outC) continue;
    float eps = bn.attrFloat("epsilon", 1e-5f);
    int64_t per = w->data->numel() / outC;
    auto nw = f32(w->data->dims);
    auto nb = f32({outC});
    for (int64_t o = 0; o < outC; ++o) {
      double s = scale->data->as<float>()[o] / std::sqrt(double(var->data->as<float>()[o]) + eps);
      for (int64_t k = 0; k < per; ++k)
        nw->as<float>()[o * per + k] = static_cast<float>(w->data->as<float>()[o * per + k] * s);
      double b0 = b ? b->data->as<float>()[o] : 0.0;
      nb->as<float>()[o] =
          static_cast<float>((b0 - mean->data->as<float>()[o]) * s + bias->data->as<float>()[o]);
    }
    ir::Value *wv = g.newValue(w->name + "_bnfold");
    wv->data = nw;
    wv->dtype = DType::Float32;
    wv->shape = w->shape;
    wv->shapeKnown = true;
    ir::Value *bv = g.newValue(conv.name + "_bnfold_bias");
    bv->data = nb;
    bv->dtype = DType::Float32;
    bv->shape = {g.ctx().constant(outC)};
    bv->shapeKnown = true;
    conv.inputs.resize(3);
    conv.inputs[1] = wv;
    conv.inputs[2] = bv;
    conv.outputs[0] = bn.outputs[0];
    bn.dead = true;
  }
  g.compact();
}

} // namespace kiln::passes
