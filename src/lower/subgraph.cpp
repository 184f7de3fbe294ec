#include "lower/subgraph.h"

#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <algorithm>
#include <map>

namespace kiln::lower {

size_t explicitInputs(const ir::Node &n) {
  size_t r = n.inputs.size();
  for (const auto &[k, a] : n.attrs)
    if (a.kind == ir::Attribute::Kind::Graph && a.graph)
      for (const ir::Capture &cap : a.graph->captures)
        r = std::min(r, cap.nodeInput);
  return r;
}

const ir::Graph &graphAttr(OpCtx &c, const char *name) {
  auto it = c.node.attrs.find(name);
  if (it == c.node.attrs.end() || it->second.kind != ir::Attribute::Kind::Graph ||
      !it->second.graph)
    fail("{}: graph attribute '{}' is missing", c.node.describe(), name);
  return *it->second.graph;
}

namespace {

/// Lowers the prepared subgraph into sub.prog: inputs as buffers (scan inputs whole,
/// read through their slice), then every node, then the outputs.
void lowerBody(ir::Graph &g, loop::SubProgram &sub, const std::vector<const FormalInput *> &bind,
               const sched::Target &target) {
  sym::Context &ctx = g.ctx();
  Lowerer low(g, sub.prog, target);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const ir::Value *v = g.inputs[i];
    const FormalInput *f = bind[i];
    bool whole = f && f->whole;
    loop::Buffer *b = sub.prog.newBuffer(v->dtype, whole ? *f->whole : v->shape,
                                         loop::BufferKind::Input, v->name);
    b->index = static_cast<int>(i);
    sub.prog.inputs.push_back(b);
    LTensor t = fromBuffer(ctx, b);
    if (whole) {
      Loader inner = t.load;
      auto slice = f->slice;
      t.shape = v->shape;
      t.buffer = nullptr;
      t.load = [inner, slice](const Index &idx) { return inner(slice(idx)); };
    }
    low.env[v] = t;
  }
  for (const auto &n : g.nodes)
    low.lowerNode(*n);
  low.writeOutputs();
}

/// The model has one constants table: the body's constants join the parent's (and,
/// through it, the model's). A constant the parent holds too (a captured weight) is
/// shared, so it is stored once and updating it reaches the body; the body's own ones
/// are named after it. Indices are reassigned in every nested program as well.
void hoistConstants(OpCtx &c, loop::Program &p, const std::string &name) {
  loop::Program &parent = c.prog();
  auto find = [&](const ir::TensorData *d) {
    auto it = std::find_if(parent.constants.begin(), parent.constants.end(),
                           [&](const loop::Buffer *o) { return o->data.get() == d; });
    return it == parent.constants.end() ? nullptr : *it;
  };
  for (loop::Buffer *b : p.constants) {
    if (find(b->data.get())) continue;
    b->index = static_cast<int>(parent.constants.size());
    b->label = fmt::format("{}/{}", name, b->label);
    parent.constants.push_back(b);
  }
  std::vector<const loop::SubProgram *> nested;
  loop::collectSubPrograms(p, nested);
  std::vector<const loop::Program *> progs{&p};
  for (const loop::SubProgram *sp : nested)
    progs.push_back(&sp->prog);
  for (const loop::Program *prog : progs)
    for (const auto &b : prog->buffers)
      if (b->kind == loop::BufferKind::Constant) b->index = find(b->data.get())->index;
}

/// A top-level If branch's late symbols become the model's too (the symbols array has
/// their slots; bind_shapes sets them to their bounds, which may not mention the parent's
/// late symbols: those are replaced by their own bounds, as addLateSymbol does).
void shareLateSymbols(OpCtx &c, loop::Program &p) {
  auto &values = c.prog().shapeValues;
  std::map<const sym::Node *, sym::Expr> parentBounds;
  for (const loop::RuntimeShapeValue &v : values)
    if (v.phase == loop::ValuePhase::InOrder) parentBounds[v.symbol.node()] = v.bound;
  std::vector<loop::RuntimeShapeValue> shared;
  for (const loop::RuntimeShapeValue &v : p.shapeValues) {
    if (v.phase != loop::ValuePhase::InOrder) continue;
    shared.push_back(v);
    shared.back().bound = sym::substitute(v.bound, parentBounds);
  }
  values.insert(values.end(), shared.begin(), shared.end());
}

} // namespace

namespace {

/// A captured value inside a body takes the outer value's type and compile-time contents.
void takeOuterValue(ir::Value *inner, const ir::Value *outer) {
  inner->dtype = outer->dtype;
  inner->shape = outer->shape;
  inner->shapeKnown = true;
  inner->data = outer->data;
  inner->symData = outer->symData;
}

std::vector<ir::Shape> itemShapes(const LSequence &seq) {
  std::vector<ir::Shape> items;
  for (const LTensor &t : seq.items)
    items.push_back(t.shape);
  return items;
}

} // namespace

CompiledBody compileBody(OpCtx &c, const ir::Graph &body, const std::string &name,
                         const std::vector<FormalInput> &formals) {
  if (body.inputs.size() != formals.size())
    fail("{}: {} has {} inputs; this node passes {}", c.node.describe(), name, body.inputs.size(),
         formals.size());
  if (!body.sequenceInputs.empty())
    fail("{}: {} takes a sequence input; kiln handles sequence-carrying bodies only in Loops "
         "it can unroll (trip count and condition known at compile time)",
         c.node.describe(), name);
  std::unique_ptr<ir::Graph> g = ir::clone(body);
  std::vector<ir::Value *> passed;
  std::vector<const FormalInput *> bind;
  for (size_t i = 0; i < formals.size(); ++i) {
    ir::Value *v = g->inputs[i];
    v->dtype = formals[i].dtype;
    v->shape = formals[i].shape;
    v->shapeKnown = true;
    if (formals[i].contents) {
      v->symData = formals[i].contents;
      continue;
    }
    passed.push_back(v);
    bind.push_back(&formals[i]);
  }
  CompiledBody r;
  for (const ir::Capture &cap : g->captures) {
    const ir::Value *outer = c.node.input(cap.nodeInput);
    KILN_ASSERT(outer && outer->shapeKnown, "{}: captured value of {} has no shape",
                c.node.describe(), name);
    ir::Value *v = cap.inner;
    takeOuterValue(v, outer);
    if (v->data) c.lowerer().constantBuffer(outer); // shared with the body (hoistConstants)
    if (v->data || v->symData) continue;            // known at compile time: folded into the body
    passed.push_back(v);
    bind.push_back(nullptr);
    r.captureInputs.push_back(cap.nodeInput);
  }
  std::vector<ir::Value *> formalValues = g->inputs;
  g->inputs = passed;
  const sched::Target &target = c.lowerer().target;
  passes::optimizeGraph(*g, nullptr, target);
  for (const ir::Value *v : g->outputs) {
    while (v->producer && v->producer->op == "Identity" && v->producer->input(0))
      v = v->producer->input(0);
    auto it = std::find(formalValues.begin(), formalValues.end(), v);
    r.passThrough.push_back(it == formalValues.end() ? -1
                                                     : static_cast<int>(it - formalValues.begin()));
    r.known.push_back(v->data);
  }

  r.sub = std::make_unique<loop::SubProgram>();
  r.sub->name = name;
  lowerBody(*g, *r.sub, bind, target);
  loop::Program &p = r.sub->prog;
  bool lateOk = c.node.op == "If" && !c.lowerer().graph.isSubgraph;
  if (!lateOk &&
      std::any_of(p.shapeValues.begin(), p.shapeValues.end(), [](const loop::RuntimeShapeValue &v) {
        return v.phase == loop::ValuePhase::InOrder;
      }))
    fail("{}: {} computes a shape from run-time values; kiln supports run-time shape values "
         "inside subgraphs only in the branches of an If at the model's top level",
         c.node.describe(), name);
  shareLateSymbols(c, p);
  r.sub->guards = g->guards;
  sym::Context &ctx = c.ctx();
  sched::scheduleProgram(p, ctx, target);
  hoistConstants(c, p, name);
  return r;
}

std::vector<LTensor> inlineBody(OpCtx &c, const ir::Graph &body, const std::string &name,
                                const std::vector<LTensor> &formals) {
  std::vector<BodyFormal> bound;
  for (const LTensor &t : formals)
    bound.push_back({BodyValue{t, std::nullopt}, nullptr});
  std::vector<LTensor> outs;
  for (BodyOutput &o : inlineBodyOutputs(c, body, name, bound)) {
    if (!o.tensor)
      fail("{}: {} output {} is a sequence here; a tensor is needed", c.node.describe(), name,
           outs.size());
    outs.push_back(*o.tensor);
  }
  return outs;
}

std::vector<BodyOutput> inlineBodyOutputs(OpCtx &c, const ir::Graph &body, const std::string &name,
                                          const std::vector<BodyFormal> &formals) {
  if (body.inputs.size() != formals.size())
    fail("{}: {} has {} inputs; this node passes {}", c.node.describe(), name, body.inputs.size(),
         formals.size());
  std::unique_ptr<ir::Graph> g = ir::clone(body);
  std::vector<ir::Value *> runtime, formalValues = g->inputs;
  for (size_t i = 0; i < formals.size(); ++i) {
    ir::Value *v = formalValues[i];
    v->shapeKnown = true;
    if (const auto &k = formals[i].constant) {
      // Known now (an unrolled Loop's iteration number): folded inside the body.
      v->data = k;
      v->dtype = k->dtype;
      v->shape.clear();
      for (int64_t d : k->dims)
        v->shape.push_back(c.ctx().constant(d));
      continue;
    }
    if (const auto &seq = formals[i].value.sequence) {
      v->dtype = seq->dtype;
      g->sequenceInputItems[v] = itemShapes(*seq);
    } else {
      v->dtype = formals[i].value.tensor->dtype;
      v->shape = formals[i].value.tensor->shape;
    }
    runtime.push_back(v);
  }
  for (const ir::Capture &cap : g->captures) {
    const ir::Value *outer = c.node.input(cap.nodeInput);
    ir::Value *v = cap.inner;
    takeOuterValue(v, outer);
    if (c.isSeqIn(cap.nodeInput)) // an outer list read by the body
      g->sequenceInputItems[v] = itemShapes(c.inSeq(cap.nodeInput));
    if (!v->data && !v->symData) runtime.push_back(v);
  }
  g->inputs = runtime; // for inference only: lowering reads the parent's tensors
  g->isSubgraph = c.lowerer().graph.isSubgraph; // lowered at the parent's level
  passes::optimizeGraph(*g);
  Lowerer low(*g, c.prog());
  for (const ir::Capture &cap : g->captures) {
    if (cap.inner->data || cap.inner->symData) continue;
    if (c.isSeqIn(cap.nodeInput))
      low.seqEnv[cap.inner] = c.inSeq(cap.nodeInput);
    else
      low.env[cap.inner] = c.in(cap.nodeInput);
  }
  for (size_t i = 0; i < formals.size(); ++i) {
    if (formals[i].constant) continue;
    if (formals[i].value.sequence)
      low.seqEnv[formalValues[i]] = *formals[i].value.sequence;
    else
      low.env[formalValues[i]] = *formals[i].value.tensor;
  }
  for (const auto &n : g->nodes)
    low.lowerNode(*n);
  std::vector<BodyOutput> outs;
  for (const ir::Value *v : g->outputs) {
    BodyOutput o;
    if (auto it = low.seqEnv.find(v); it != low.seqEnv.end())
      o.sequence = it->second;
    else
      o.tensor = low.valueTensor(v);
    outs.push_back(std::move(o));
  }
  // Checks recorded while lowering belong to the enclosing graph now.
  for (const ir::ShapeGuard &gd : g->guards)
    c.guardEqual(gd.lhs, gd.rhs, gd.what);
  return outs;
}

void requireOutputShape(OpCtx &c, loop::SubProgram &sub, size_t j, const ir::Shape &shape,
                        const std::string &what) {
  const ir::Shape &actual = sub.prog.outputs.at(j)->shape;
  if (actual.size() != shape.size())
    fail("{}: {} has rank {}, expected {} ({})", c.node.describe(), what, actual.size(),
         shape.size(), ir::shapeToString(shape));
  for (size_t d = 0; d < shape.size(); ++d) {
    if (sym::provablyEqual(actual[d], shape[d])) continue;
    if (actual[d].isConst() && shape[d].isConst())
      fail("{}: {} has shape {}, expected {}", c.node.describe(), what, ir::shapeToString(actual),
           ir::shapeToString(shape));
    bool known = std::any_of(sub.guards.begin(), sub.guards.end(), [&](const ir::ShapeGuard &g) {
      return g.lhs == actual[d] && g.rhs == shape[d];
    });
    if (known) continue;
    sub.guards.push_back(
        {actual[d], shape[d],
         fmt::format("{}: {} must have shape {} at every call; dim {} is {}", c.node.describe(),
                     what, ir::shapeToString(shape), d, sym::toString(actual[d]))});
  }
}

ir::Shape firstCallShape(const ir::Shape &shape, const std::vector<sym::Expr> &locals) {
  std::map<const sym::Node *, sym::Expr> zero;
  for (const sym::Expr &s : locals)
    if (s.valid()) zero[s.node()] = s.ctx().constant(0);
  ir::Shape r;
  for (const sym::Expr &d : shape)
    r.push_back(sym::substitute(d, zero));
  return r;
}

} // namespace kiln::lower
