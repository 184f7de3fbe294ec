// If and Loop (Scan is in ops_scan.cpp). Each subgraph becomes its own sub-program
// (lower/subgraph.h) and the node one Call kernel, whose host control flow the wrapper prints
// as real C++ (codegen/wrapper/control_flow.cpp). Loop bodies see the iteration number as a
// symbol, so slicing by it stays symbolic.
#include "loop/interp.h"
#include "lower/control_common.h"

namespace kiln::lower {

namespace {

using loop::ControlFlow;

/// A condition output: bool with one element.
void requireCondition(OpCtx &c, loop::SubProgram &sub, size_t j, const char *what) {
  const loop::Buffer *b = sub.prog.outputs.at(j);
  requireBool(c, b->dtype, what);
  requireOutputShape(c, sub, j, ir::Shape(b->shape.size(), c.ctx().constant(1)), what);
}

/// If whose branches yield sequences. Sequences are compile-time lists, so both branches
/// are inlined (they have no side effects) and each output element is chosen by the
/// condition at run time; the branches must agree on lengths, dtypes and shapes.
void lowerIfOfSequences(OpCtx &c) {
  requireBool(c, c.in(0).dtype, "the condition");
  LTensor condT = c.in(0);
  VRef cond = loop::cast(condT.load(Index(condT.rank(), c.ctx().constant(0))), DType::Bool);
  std::vector<BodyOutput> a = inlineBodyOutputs(c, graphAttr(c, "then_branch"),
                                                c.node.name + " then"),
                          b = inlineBodyOutputs(c, graphAttr(c, "else_branch"),
                                                c.node.name + " else");
  if (a.size() != c.node.outputs.size() || b.size() != c.node.outputs.size())
    fail("{}: its branches give {} and {} outputs; the node has {}", c.node.describe(), a.size(),
         b.size(), c.node.outputs.size());
  auto choose = [&](const LTensor &x, const LTensor &y, const std::string &what) {
    if (x.dtype != y.dtype || x.rank() != y.rank())
      fail("{}: {} is {}{} in the then branch but {}{} in the else branch; kiln needs both "
           "branches to agree",
           c.node.describe(), what, dtypeName(x.dtype), ir::shapeToString(x.shape),
           dtypeName(y.dtype), ir::shapeToString(y.shape));
    for (int d = 0; d < x.rank(); ++d)
      c.guardEqual(x.shape[d], y.shape[d],
                   fmt::format("{} dim {} differs between the then and else branches", what, d));
    return c.pointwise(x.dtype, x.shape,
                       [=](const Index &i) { return loop::select(cond, x.load(i), y.load(i)); });
  };
  for (size_t j = 0; j < a.size(); ++j) {
    std::string what = fmt::format("output {}", j);
    if (a[j].tensor && b[j].tensor) {
      c.out(j, choose(*a[j].tensor, *b[j].tensor, what));
      continue;
    }
    if (!a[j].sequence || !b[j].sequence)
      fail("{}: {} is a sequence in one branch and a tensor in the other", c.node.describe(), what);
    const LSequence &x = *a[j].sequence, &y = *b[j].sequence;
    if (x.items.size() != y.items.size())
      fail("{}: {} has {} items in the then branch but {} in the else branch; kiln keeps "
           "sequences as compile-time lists, so both branches must give the same length",
           c.node.describe(), what, x.items.size(), y.items.size());
    LSequence r;
    r.dtype = x.dtype;
    for (size_t k = 0; k < x.items.size(); ++k)
      r.items.push_back(choose(x.items[k], y.items[k], fmt::format("{} item {}", what, k)));
    c.outSeq(j, r);
  }
}

/// Whether dim e reads a late symbol of body program p (a size that branch computes).
bool mentionsLate(const loop::Program &p, sym::Expr e) {
  for (const sym::Expr &s : sym::freeSymbols(e))
    if (p.isInOrderValue(s)) return true;
  return false;
}

sym::Expr lateBound(OpCtx &c, sym::Expr s) {
  const loop::RuntimeShapeValue *v = c.prog().shapeValue(s);
  KILN_ASSERT(v && v->phase == loop::ValuePhase::InOrder, "{} is not computed in order", s.name());
  return v->bound;
}

void lowerIf(OpCtx &c) {
  if (const ir::TensorData *cond = c.constIn(0)) {
    // Known condition: only the taken branch is compiled, inline with the parent.
    if (cond->numel() != 1)
      fail("{}: the condition has {} elements, expected 1", c.node.describe(), cond->numel());
    bool taken = cond->getInt(0) != 0;
    std::vector<LTensor> outs = inlineBody(c, graphAttr(c, taken ? "then_branch" : "else_branch"),
                                           c.node.name + (taken ? " then" : " else"));
    if (outs.size() != c.node.outputs.size())
      fail("{}: its {} branch gives {} outputs; the node has {}", c.node.describe(),
           taken ? "then" : "else", outs.size(), c.node.outputs.size());
    for (size_t j = 0; j < outs.size(); ++j)
      c.out(j, outs[j]);
    return;
  }
  const ir::Graph &thenG = graphAttr(c, "then_branch"), &elseG = graphAttr(c, "else_branch");
  if (!thenG.sequenceOutputs.empty() || !elseG.sequenceOutputs.empty()) {
    lowerIfOfSequences(c);
    return;
  }
  std::vector<CompiledBody> bodies;
  bodies.push_back(compileBody(c, graphAttr(c, "then_branch"), c.node.name + " then", {}));
  bodies.push_back(compileBody(c, graphAttr(c, "else_branch"), c.node.name + " else", {}));
  const loop::Program &tp = bodies[0].sub->prog, &ep = bodies[1].sub->prog;
  size_t n = c.node.outputs.size();
  if (tp.outputs.size() != n || ep.outputs.size() != n)
    fail("{}: its branches give {} and {} outputs; the node has {}", c.node.describe(),
         tp.outputs.size(), ep.outputs.size(), n);
  auto cf = newControlFlow(c, ControlFlow::Op::If);
  requireBool(c, c.in(0).dtype, "the condition");
  cf->cond = bufferOf(c, 0);
  cf->reads.push_back(cf->cond);
  std::vector<loop::Buffer *> outs;
  for (size_t j = 0; j < n; ++j) {
    const loop::Buffer *a = tp.outputs[j], *b = ep.outputs[j];
    if (a->dtype != b->dtype || a->shape.size() != b->shape.size())
      fail("{}: output {} is {}{} in the then branch but {}{} in the else branch; kiln needs "
           "both branches to agree",
           c.node.describe(), j, dtypeName(a->dtype), ir::shapeToString(a->shape),
           dtypeName(b->dtype), ir::shapeToString(b->shape));
    // Only one branch runs, yet the output's size is fixed before the run: equal dims, or
    // a late symbol when a branch computes its dim (set by the call from the taken branch).
    ir::Shape shape = a->shape;
    for (size_t d = 0; d < a->shape.size(); ++d) {
      if (sym::provablyEqual(a->shape[d], b->shape[d])) continue;
      if (mentionsLate(tp, a->shape[d]) || mentionsLate(ep, b->shape[d])) {
        sym::Expr bound = sym::max(a->shape[d], b->shape[d]);
        shape[d] = c.lateSymbol(fmt::format("out{}.dim{}", j, d).c_str(), bound);
        cf->lateDims.push_back({shape[d], lateBound(c, shape[d]), {a->shape[d], b->shape[d]}});
        continue;
      }
      c.guardEqual(a->shape[d], b->shape[d],
                   fmt::format("output {} dim {} differs between the then and else branches; "
                               "kiln needs both branches to give the same shape",
                               j, d));
    }
    outs.push_back(newBuffer(c, a->dtype, shape, ""));
  }
  for (const CompiledBody &body : bodies) {
    cf->bodyLate.emplace_back();
    for (const loop::RuntimeShapeValue &v : body.sub->prog.shapeValues)
      if (v.phase == loop::ValuePhase::InOrder) cf->bodyLate.back().push_back(v.symbol);
  }
  cf->writes = outs;
  emitCall(c, cf, bodies);
  for (size_t j = 0; j < n; ++j)
    c.out(j, fromBuffer(c.ctx(), outs[j]));
}

/// Loop's trip count M as a symbol (scan outputs are sized by it before the run).
sym::Expr tripSymbol(OpCtx &c) {
  if (c.in(0).rank() > 1 || (c.in(0).rank() == 1 && !c.in(0).shape[0].isConst(1)))
    fail("{}: the trip count M must be a scalar", c.node.describe());
  if (auto m = c.symIn(0)) return m->at(0);
  if (c.node.input(0)->isGraphInput) return c.requireScalarSymIn(0, "M", 0);
  return c.runtimeSymbols(c.in(0), "M", 0, INT32_MAX).at(0);
}

/// For a body that passes its condition on unchanged, the loop runs `cond ? M : 0` times:
/// a shape value bind_shapes evaluates, if cond and M come from model inputs.
std::optional<sym::Expr> tripsOfKeptCondition(OpCtx &c) {
  LTensor m = c.in(0), cond = c.in(1);
  sym::Context &ctx = c.ctx();
  VRef v = loop::select(loop::cast(cond.load(Index(cond.rank(), ctx.constant(0))), DType::Bool),
                        loop::cast(m.load(Index(m.rank(), ctx.constant(0))), DType::Int64),
                        loop::constantInt(DType::Int64, 0));
  if (!c.knownBeforeRun(v)) return std::nullopt;
  return c.runtimeSymbol(v, "trips", 0, INT32_MAX);
}

/// Sets cf's trip count for a Loop with scan outputs, which are sized by the iterations
/// run: M when the condition provably stays true; `cond ? M : 0` when the body passes the
/// condition on; otherwise M as a bound and the actual count as a late symbol (set by the
/// run). Inside a subgraph that last case fails at run time if the loop ends early.
void setScanTrips(OpCtx &c, ControlFlow &cf, const CompiledBody &cb) {
  const ir::TensorData *known = cb.known[0].get();
  bool keeps = cb.passThrough[0] == 1 || (known && known->numel() == 1 && known->getInt(0) != 0);
  std::optional<bool> initial;
  if (!c.has(1)) initial = true;
  if (const ir::TensorData *ci = c.constIn(1); ci && ci->numel() == 1) initial = ci->getInt(0) != 0;
  if (keeps && initial) {
    cf.trips = *initial ? tripSymbol(c) : c.ctx().constant(0);
    return;
  }
  if (keeps)
    if (auto t = tripsOfKeptCondition(c)) {
      cf.trips = *t;
      return;
    }
  cf.trips = tripSymbol(c);
  if (!c.lowerer().graph.isSubgraph) cf.iterations = c.lateSymbol("iterations", cf.trips);
}

std::shared_ptr<const ir::TensorData> scalarData(DType t, int64_t v) {
  auto d = std::make_shared<ir::TensorData>();
  d->dtype = t;
  d->bytes.resize(static_cast<size_t>(dtypeSize(t)));
  loop::storeScalar(*d, 0, static_cast<double>(v), v);
  return d;
}

/// The value of a one-element tensor if it is known at compile time.
std::optional<int64_t> knownScalar(OpCtx &c, const LTensor &t) {
  auto v =
      loop::asSym(loop::cast(t.load(Index(t.rank(), c.ctx().constant(0))), DType::Int64), c.ctx());
  if (v && v->isConst()) return (*v)->value;
  return std::nullopt;
}

/// A Loop that carries a sequence (a compile-time list, so its length after each iteration
/// must be known) is unrolled: the body is inlined once per iteration with the iteration
/// number as a constant. The trip count and the condition must be known at compile time.
void lowerUnrolledLoop(OpCtx &c, const ir::Graph &body, size_t N, size_t K) {
  constexpr int64_t kMaxUnroll = 1024;
  if (K > 0) c.unsupported("scan outputs in a Loop that carries a sequence");
  std::optional<int64_t> trips = c.has(0) ? knownScalar(c, c.in(0)) : std::nullopt;
  if (!trips)
    fail("{}: this Loop carries a sequence, so kiln unrolls it at compile time; its trip count "
         "M must be known at compile time",
         c.node.describe());
  if (*trips > kMaxUnroll)
    fail("{}: unrolling {} iterations (a Loop carrying a sequence) exceeds kiln's limit of {}",
         c.node.describe(), *trips, kMaxUnroll);
  std::optional<int64_t> cond = c.has(1) ? knownScalar(c, c.in(1)) : std::optional<int64_t>(1);
  if (!cond)
    fail("{}: this Loop carries a sequence, so kiln unrolls it; its initial condition must be "
         "known at compile time",
         c.node.describe());
  std::vector<BodyValue> carried;
  for (size_t k = 0; k < N; ++k) {
    BodyValue v;
    if (c.isSeqIn(2 + k))
      v.sequence = c.inSeq(2 + k);
    else
      v.tensor = c.in(2 + k);
    carried.push_back(v);
  }
  for (int64_t i = 0; i < *trips && *cond; ++i) {
    std::vector<BodyFormal> formals;
    formals.push_back({{}, scalarData(DType::Int64, i)});
    formals.push_back({{}, scalarData(DType::Bool, 1)});
    for (const BodyValue &v : carried)
      formals.push_back({v, nullptr});
    std::vector<BodyOutput> outs =
        inlineBodyOutputs(c, body, fmt::format("{} iteration {}", c.node.name, i), formals);
    if (outs.size() != N + 1 || !outs[0].tensor)
      fail("{}: its body gives {} outputs; it needs the condition and {} loop-carried values",
           c.node.describe(), outs.size(), N);
    cond = knownScalar(c, *outs[0].tensor);
    if (!cond)
      fail("{}: this Loop carries a sequence, so kiln unrolls it; the condition its body "
           "computes must be known at compile time",
           c.node.describe());
    carried.assign(outs.begin() + 1, outs.end());
  }
  for (size_t k = 0; k < N; ++k) {
    if (carried[k].sequence)
      c.outSeq(k, *carried[k].sequence);
    else
      c.out(k, *carried[k].tensor);
  }
}

void lowerLoop(OpCtx &c) {
  const ir::Graph &body = graphAttr(c, "body");
  size_t nIn = explicitInputs(c.node);
  if (nIn < 2) fail("{}: Loop takes inputs M and cond (either may be empty)", c.node.describe());
  size_t N = nIn - 2;
  if (body.outputs.size() < N + 1)
    fail("{}: its body has {} outputs; it needs at least {} (cond and {} loop-carried)",
         c.node.describe(), body.outputs.size(), N + 1, N);
  size_t K = body.outputs.size() - 1 - N;
  if (!body.sequenceInputs.empty()) {
    lowerUnrolledLoop(c, body, N, K);
    return;
  }
  if (!c.has(0) && K > 0)
    c.unsupported("a Loop with scan outputs and no trip count M (their size would depend on "
                  "when the condition ends it)");
  auto cf = newControlFlow(c, ControlFlow::Op::Loop);
  // Without scan outputs every shape is known without M: it is read at run time unless
  // known now.
  std::optional<std::vector<sym::Expr>> m = c.has(0) ? c.symIn(0) : std::nullopt;
  if (m) cf->trips = m->at(0);
  cf->iter = iterationSymbol(c.ctx(), "_iter", cf->trips);

  std::vector<FormalInput> formals(2 + N);
  formals[0].dtype = DType::Int64;
  formals[0].contents = std::vector<sym::Expr>{cf->iter};
  formals[1].dtype = DType::Bool;
  std::vector<LTensor> init;
  for (size_t k = 0; k < N; ++k) {
    init.push_back(c.in(2 + k));
    formals[2 + k].dtype = init[k].dtype;
    formals[2 + k].shape = init[k].shape;
  }
  CompiledBody cb = compileBody(c, body, c.node.name + " body", formals);
  loop::SubProgram &sub = *cb.sub;
  requireCondition(c, sub, 0, "its body's condition output");
  if (K > 0) setScanTrips(c, *cf, cb);
  for (size_t k = 0; k < N; ++k) {
    std::string what = fmt::format("loop-carried value {} (body output {})", k, 1 + k);
    if (sub.prog.outputs[1 + k]->dtype != init[k].dtype)
      fail("{}: {} is {} but starts as {}", c.node.describe(), what,
           dtypeName(sub.prog.outputs[1 + k]->dtype), dtypeName(init[k].dtype));
    requireOutputShape(c, sub, 1 + k, init[k].shape, what);
  }
  std::vector<ir::Shape> perIter;
  for (size_t s = 0; s < K; ++s) {
    size_t j = 1 + N + s;
    perIter.push_back(firstCallShape(sub.prog.outputs[j]->shape, {cf->iter}));
    requireOutputShape(c, sub, j, perIter.back(), fmt::format("scan output {}", s));
  }

  if (c.has(0) && !cf->trips.valid()) {
    cf->tripBuffer = bufferOf(c, 0);
    cf->reads.push_back(cf->tripBuffer);
  }
  if (c.has(1)) {
    requireBool(c, c.in(1).dtype, "the initial condition");
    cf->cond = bufferOf(c, 1);
    cf->reads.push_back(cf->cond);
  }
  for (size_t k = 0; k < N; ++k) {
    ControlFlow::Carried cv;
    cv.init = bufferOf(c, 2 + k);
    cv.out = newBuffer(c, init[k].dtype, init[k].shape, "");
    cv.spare = newBuffer(c, init[k].dtype, init[k].shape, "");
    cf->reads.push_back(cv.init);
    cf->writes.push_back(cv.out);
    cf->writes.push_back(cv.spare);
    cf->carried.push_back(cv);
  }
  for (size_t s = 0; s < K; ++s) {
    ir::Shape shape{cf->iterations.valid() ? cf->iterations : cf->trips};
    shape.insert(shape.end(), perIter[s].begin(), perIter[s].end());
    ControlFlow::Stacked st;
    st.buf = newBuffer(c, sub.prog.outputs[1 + N + s]->dtype, shape, "");
    cf->writes.push_back(st.buf);
    cf->scanOutputs.push_back(st);
  }
  std::vector<CompiledBody> bodies;
  bodies.push_back(std::move(cb));
  emitCall(c, cf, bodies);
  for (size_t k = 0; k < N; ++k)
    c.out(k, fromBuffer(c.ctx(), cf->carried[k].out));
  for (size_t s = 0; s < K; ++s)
    c.out(N + s, fromBuffer(c.ctx(), cf->scanOutputs[s].buf));
}

} // namespace

void registerControlOps(std::vector<OpInfo> &r) {
  r.push_back({"If", 1, lowerIf});
  r.push_back({"Loop", 1, lowerLoop});
}

} // namespace kiln::lower
