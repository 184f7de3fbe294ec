// The Lowerer (graph inputs, one lowering per node, graph outputs) and OpCtx's building
// tools: inputs, outputs, pointwise tensors, realize, reduce, extern kernels.
// OpCtx's compile-time and run-time integer values are in op_ctx_values.cpp.
#include "lower/lowerer.h"
#include "lower/ml_common.h"

#include "support/error.h"

#include <algorithm>
#include <set>

namespace kiln::lower {

sym::Context &OpCtx::ctx() {
  return l_.graph.ctx();
}
loop::Program &OpCtx::prog() {
  return l_.prog;
}

LTensor OpCtx::in(size_t i) {
  const ir::Value *v = node.input(i);
  if (!v) fail("{}: input {} is required but absent", node.describe(), i);
  return l_.valueTensor(v);
}

const LSequence &OpCtx::inSeq(size_t i) {
  const ir::Value *v = node.input(i);
  if (!v) fail("{}: input {} is required but absent", node.describe(), i);
  auto it = l_.seqEnv.find(v);
  if (it == l_.seqEnv.end())
    fail("{}: input {} ('{}') must be a sequence, got a tensor", node.describe(), i, v->name);
  return it->second;
}

bool OpCtx::isSeqIn(size_t i) const {
  const ir::Value *v = node.input(i);
  return v && l_.seqEnv.count(v);
}

bool OpCtx::isNoneIn(size_t i) const {
  const ir::Value *v = node.input(i);
  return v && l_.noneEnv.count(v);
}

const ir::TensorData *OpCtx::constIn(size_t i) {
  const ir::Value *v = node.input(i);
  return v && v->data ? v->data.get() : nullptr;
}

void OpCtx::out(size_t i, LTensor t) {
  if (i >= node.outputs.size() || !node.outputs[i]) return;
  l_.env[node.outputs[i]] = std::move(t);
}

void OpCtx::outSeq(size_t i, LSequence s) {
  if (i >= node.outputs.size() || !node.outputs[i]) return;
  l_.seqEnv[node.outputs[i]] = std::move(s);
}

void OpCtx::outNone(size_t i) {
  if (i >= node.outputs.size() || !node.outputs[i]) return;
  l_.noneEnv.insert(node.outputs[i]);
}

LTensor OpCtx::pointwise(DType t, ir::Shape shape, Loader fn, bool cheap) {
  LTensor r;
  r.dtype = t;
  r.shape = std::move(shape);
  r.load = std::move(fn);
  r.cheap = cheap;
  return r;
}

LTensor OpCtx::realize(const LTensor &t) {
  if (t.buffer) return t;
  loop::Buffer *b = prog().newBuffer(t.dtype, t.shape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = prog().newKernel(loop::KernelKind::Pointwise);
  k->origin = node.name;
  k->out = b;
  for (const sym::Expr &d : t.shape)
    k->vars.push_back(l_.newVar("i", d));
  k->body = t.load(k->vars);
  return fromBuffer(ctx(), b);
}

LTensor OpCtx::reduce(const LTensor &t, std::vector<int> axes, bool keepdims, loop::ReduceOp op,
                      DType acc, const std::function<loop::VRef(loop::VRef)> &pre) {
  std::sort(axes.begin(), axes.end());
  axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
  ir::Shape outShape;
  std::vector<int> keptAxes;
  for (int d = 0; d < t.rank(); ++d) {
    bool reduced = std::count(axes.begin(), axes.end(), d) != 0;
    if (!reduced) {
      outShape.push_back(t.shape[d]);
      keptAxes.push_back(d);
    } else if (keepdims) {
      outShape.push_back(ctx().constant(1));
    }
  }
  DType outType =
      (op == loop::ReduceOp::ArgMax || op == loop::ReduceOp::ArgMin) ? DType::Int64 : acc;
  loop::Buffer *b = prog().newBuffer(outType, outShape, loop::BufferKind::Intermediate, "");
  loop::Kernel *k = prog().newKernel(loop::KernelKind::Reduction);
  k->origin = node.name;
  k->out = b;
  k->rop = op;
  k->accDtype = acc;
  for (const sym::Expr &d : outShape)
    k->vars.push_back(l_.newVar("i", d));
  Index full(t.rank());
  size_t outPos = 0;
  for (int d = 0; d < t.rank(); ++d) {
    bool reduced = std::count(axes.begin(), axes.end(), d) != 0;
    if (reduced) {
      sym::Expr r = l_.newVar("r", t.shape[d]);
      k->rvars.push_back(r);
      k->rsizes.push_back(t.shape[d]);
      full[d] = r;
      if (keepdims) ++outPos;
    } else {
      full[d] = k->vars[outPos++];
    }
  }
  loop::VRef v = t.load(full);
  if (pre) v = pre(v);
  k->body = loop::cast(v, acc);
  return fromBuffer(ctx(), b);
}

loop::Kernel *OpCtx::externKernel(loop::ExternKind kind) {
  loop::Kernel *k = prog().newKernel(loop::KernelKind::Extern);
  k->origin = node.name;
  k->ext.kind = kind;
  k->ext.site = prog().nextSite++;
  return k;
}

void OpCtx::unsupported(const std::string &what) {
  fail("{}: {} is not supported by kiln", node.describe(), what);
}

int OpCtx::normAxis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) // a scalar has no axis (ops indexed dim 0 of it)
    fail("{}: axis {} is out of range for rank {}", node.describe(), axis, rank);
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

sym::Expr Lowerer::newVar(const char *prefix, sym::Expr size) {
  sym::Range r = sym::rangeOf(size);
  int64_t hi = r.hi == INT64_MAX ? INT64_MAX : r.hi - 1;
  return graph.ctx().freshSymbol(std::string("_") + prefix, 0, hi);
}

loop::Buffer *Lowerer::constantBuffer(const ir::Value *v) {
  auto it = constBuffers_.find(v);
  if (it != constBuffers_.end()) return it->second;
  ir::Shape shape;
  for (int64_t d : v->data->dims)
    shape.push_back(graph.ctx().constant(d));
  loop::Buffer *b = prog.newBuffer(v->data->dtype, shape, loop::BufferKind::Constant, v->name);
  b->data = v->data;
  b->index = static_cast<int>(prog.constants.size());
  prog.constants.push_back(b);
  constBuffers_[v] = b;
  return b;
}

LTensor Lowerer::valueTensor(const ir::Value *v) {
  if (v->data && !env.count(v)) env[v] = fromBuffer(graph.ctx(), constantBuffer(v));
  // Shape tensors known symbolically read as their sym values, not as loads (their
  // producers may have been removed as dead code).
  if (v->symData && !v->data) return symbolicVector(graph.ctx(), v->dtype, v->shape, *v->symData);
  auto it = env.find(v);
  if (it == env.end() && seqEnv.count(v))
    fail("value '{}' is a sequence where a tensor is expected (sequences are supported only "
         "as inputs of the Sequence* ops)",
         v->name);
  if (it == env.end() && noneEnv.count(v))
    fail("value '{}' is an empty optional where a tensor is expected", v->name);
  KILN_ASSERT(it != env.end(), "value '{}' used before it was lowered", v->name);
  return it->second;
}

void Lowerer::lowerNode(const ir::Node &n) {
  bool ml = n.domain == "ai.onnx.ml";
  if (!n.domain.empty() && n.domain != "ai.onnx" && !ml)
    fail("{}: operator domain '{}' is not supported (kiln knows the default ONNX domain and "
         "ai.onnx.ml)",
         n.describe(), n.domain);
  const OpInfo *info = ml ? findMlOp(n.op) : findOp(n.op);
  if (!info)
    fail("{}: operator '{}'{} is not supported by kiln", n.describe(), n.op,
         ml ? " of domain ai.onnx.ml" : "");
  if (!ml && n.opset > ir::kMaxOnnxOpset)
    fail("{}: the model imports ONNX opset {}, newer than kiln knows; kiln implements {} as "
         "defined in opsets {} to {} (re-export the model with opset {} or older)",
         n.describe(), n.opset, n.op, info->sinceOpset, ir::kMaxOnnxOpset, ir::kMaxOnnxOpset);
  OpCtx c(*this, n);
  if (n.op == "Identity" && c.isSeqIn(0))
    c.outSeq(0, c.inSeq(0)); // Identity also passes sequences through (opset 14+)
  else if (n.op == "Identity" && c.isNoneIn(0))
    c.outNone(0); // and optionals (opset 16+)
  else
    info->lower(c);
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    const ir::Value *o = n.outputs[i];
    if (o && !o->name.empty() && !env.count(o) && !seqEnv.count(o) && !noneEnv.count(o))
      fail("{}: output {} ('{}') is not produced by kiln's lowering", n.describe(), i, o->name);
  }
}

} // namespace kiln::lower

namespace kiln::lower {

void Lowerer::lowerGraph() {
  sym::Context &ctx = graph.ctx();
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const ir::Value *v = graph.inputs[i];
    loop::Buffer *b = prog.newBuffer(v->dtype, v->shape, loop::BufferKind::Input, v->name);
    b->index = static_cast<int>(i);
    prog.inputs.push_back(b);
    env[v] = fromBuffer(ctx, b);
  }
  for (const auto &n : graph.nodes)
    lowerNode(*n);
  writeOutputs();
  if (!graph.isSubgraph) dropGuardsOfUnloweredValues();
}

void Lowerer::dropGuardsOfUnloweredValues() {
  // Shape inference lowers every node into a scratch program; a node whose outputs it folded
  // (a SplitToSequence only counted by SequenceLength) is not lowered again, so a guard it
  // left over a value read from input data has nothing to compute that value at run time.
  std::set<const sym::Node *> known;
  for (const ir::Value *v : graph.inputs)
    for (const sym::Expr &d : v->shape)
      for (const sym::Expr &s : sym::freeSymbols(d))
        known.insert(s.node());
  for (const loop::RuntimeShapeValue &v : prog.shapeValues)
    known.insert(v.symbol.node());
  auto computable = [&](const ir::ShapeGuard &gd) {
    for (const sym::Expr &e : {gd.lhs, gd.rhs})
      for (const sym::Expr &s : sym::freeSymbols(e))
        if (!known.count(s.node())) return false;
    return true;
  };
  std::erase_if(graph.guards, [&](const ir::ShapeGuard &gd) { return !computable(gd); });
}

void Lowerer::writeOutputs() {
  // The C API passes tensors only: a sequence output becomes one output per item
  // (`<name>.K`); an optional-typed one reports `<name>.has_value` (a bool scalar) first.
  std::vector<std::pair<std::string, LTensor>> outs;
  auto flag = [&](bool b) {
    return LTensor{
        DType::Bool, {}, [b](const Index &) { return loop::constantInt(DType::Bool, b ? 1 : 0); }};
  };
  for (size_t j = 0; j < graph.outputs.size(); ++j) {
    const ir::Value *v = graph.outputs[j];
    bool none = noneEnv.count(v) != 0;
    if (graph.isSubgraph && (none || seqEnv.count(v)))
      fail("subgraph output '{}' is {}; kiln passes only tensors out of If/Loop/Scan bodies",
           v->name, none ? "an empty optional" : "a sequence");
    if (graph.isSubgraph) {
      outs.push_back({v->name, valueTensor(v)});
      continue;
    }
    if (graph.optionalOutputs.count(j) || none)
      outs.push_back({v->name + ".has_value", flag(!none)});
    if (none) continue;
    if (auto it = seqEnv.find(v); it != seqEnv.end()) {
      for (size_t k = 0; k < it->second.items.size(); ++k)
        outs.push_back({fmt::format("{}.{}", v->name, k), it->second.items[k]});
      continue;
    }
    outs.push_back({v->name, valueTensor(v)});
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    const auto &[name, t] = outs[j];
    prog.outputNames.push_back(name);
    bool takeOver = t.buffer && t.buffer->kind == loop::BufferKind::Intermediate;
    if (takeOver) {
      t.buffer->kind = loop::BufferKind::Output;
      t.buffer->index = static_cast<int>(j);
      prog.outputs.push_back(t.buffer);
      continue;
    }
    // Inputs, constants, views and outputs listed twice are copied into the output.
    loop::Buffer *b = prog.newBuffer(t.dtype, t.shape, loop::BufferKind::Output, name);
    b->index = static_cast<int>(j);
    prog.outputs.push_back(b);
    loop::Kernel *k = prog.newKernel(loop::KernelKind::Pointwise);
    k->origin = "output " + name;
    k->out = b;
    for (const sym::Expr &d : t.shape)
      k->vars.push_back(newVar("i", d));
    k->body = t.load(k->vars);
  }
}

} // namespace kiln::lower
