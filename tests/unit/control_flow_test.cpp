// Control flow: subgraph import with outer-scope captures, lowering of Loop into a Call
// kernel running a sub-program, and the schedule's view of Call kernels.
#include "loop/control_flow.h"
#include "lower/lowerer.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "sched/schedule.h"

#include <gtest/gtest.h>

using namespace kiln;
using kiln::test::OnnxBuilder;

namespace {

onnx::GraphProto *graphAttr(onnx::NodeProto *n, const std::string &name) {
  auto *a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name(name);
  return a->mutable_g();
}

void addIo(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> *list, const std::string &name,
           int elemType, const std::vector<OnnxBuilder::Dim> &dims) {
  OnnxBuilder::setType(list->Add(), name, elemType, dims);
}

onnx::NodeProto *addNode(onnx::GraphProto *g, const std::string &op,
                         const std::vector<std::string> &ins,
                         const std::vector<std::string> &outs) {
  auto *n = g->add_node();
  n->set_op_type(op);
  n->set_name(op + "_" + std::to_string(g->node_size()));
  for (auto &i : ins)
    n->add_input(i);
  for (auto &o : outs)
    n->add_output(o);
  return n;
}

/// y_final, ys = Loop(M, "", y) with body: y_out = y_in + w (w from the outer scope),
/// plus an If inside the body whose branches read `w` two scopes up.
void buildLoop(OnnxBuilder &b) {
  constexpr int F = onnx::TensorProto::FLOAT, B = onnx::TensorProto::BOOL,
                I = onnx::TensorProto::INT64;
  b.input("M", {}, I);
  b.input("y", {"n"});
  b.input("w", {"n"});
  auto *loop = b.node("Loop", {"M", "", "y"}, {"y_final", "ys"}, "loop");
  onnx::GraphProto *body = graphAttr(loop, "body");
  addIo(body->mutable_input(), "i", I, {});
  addIo(body->mutable_input(), "c", B, {});
  addIo(body->mutable_input(), "y_in", F, {"n"});
  addNode(body, "Identity", {"c"}, {"c_out"});
  addNode(body, "Add", {"y_in", "w"}, {"y_out"});
  auto *iff = addNode(body, "If", {"c"}, {"s"});
  onnx::GraphProto *thenB = graphAttr(iff, "then_branch"), *elseB = graphAttr(iff, "else_branch");
  addNode(thenB, "Neg", {"w"}, {"t"});
  thenB->add_output()->set_name("t");
  addNode(elseB, "Abs", {"w"}, {"e"});
  elseB->add_output()->set_name("e");
  body->add_output()->set_name("c_out");
  body->add_output()->set_name("y_out");
  body->add_output()->set_name("s");
  b.output("y_final", {"n"});
  b.outputUntyped("ys");
}

} // namespace

TEST(ControlFlow, ImportCapturesOuterValues) {
  OnnxBuilder b;
  buildLoop(b);
  sym::Context ctx;
  auto g = b.import(ctx);
  ASSERT_EQ(g->nodes.size(), 1u);
  const ir::Node &loop = *g->nodes[0];
  // M, cond (absent), y, then the captured w.
  ASSERT_EQ(loop.inputs.size(), 4u);
  EXPECT_EQ(loop.inputs[1], nullptr);
  EXPECT_EQ(loop.inputs[3], g->findValue("w"));
  const ir::Graph &body = *loop.attrs.at("body").graph;
  ASSERT_EQ(body.captures.size(), 1u);
  EXPECT_EQ(body.captures[0].nodeInput, 3u);
  EXPECT_EQ(body.captures[0].inner->name, "w");
  EXPECT_EQ(body.inputs.size(), 3u);
  // The If's branches capture w from the body, which captured it from the model.
  const ir::Node *iff = nullptr;
  for (auto &n : body.nodes)
    if (n->op == "If") iff = n.get();
  ASSERT_NE(iff, nullptr);
  ASSERT_EQ(iff->inputs.size(), 2u);
  EXPECT_EQ(iff->inputs[1], body.captures[0].inner);
  // Both branches share the one extra input.
  EXPECT_EQ(iff->attrs.at("then_branch").graph->captures[0].nodeInput, 1u);
  EXPECT_EQ(iff->attrs.at("else_branch").graph->captures[0].nodeInput, 1u);
  // A clone is independent of the original.
  auto copy = ir::clone(body);
  ASSERT_EQ(copy->captures.size(), 1u);
  EXPECT_NE(copy->captures[0].inner, body.captures[0].inner);
  EXPECT_EQ(copy->captures[0].inner, copy->findValue("w"));
  EXPECT_EQ(copy->nodes.size(), body.nodes.size());
}

TEST(ControlFlow, LoopLowersToOneCallKernel) {
  OnnxBuilder b;
  buildLoop(b);
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::optimizeGraph(*g);
  // The scan output is sized by the run-time trip count (a data symbol).
  const ir::Value *ys = g->findValue("ys");
  ASSERT_EQ(ys->shape.size(), 2u);
  EXPECT_EQ(sym::toString(ys->shape[0]), "M");
  loop::Program prog;
  lower::Lowerer low(*g, prog);
  low.lowerGraph();
  sched::scheduleProgram(prog, ctx, sched::Target::cpu());
  const loop::Kernel *call = nullptr;
  for (auto &k : prog.kernels)
    if (k->kind == loop::KernelKind::Call) call = k.get();
  ASSERT_NE(call, nullptr) << loop::dump(prog);
  const loop::ControlFlow &cf = *call->call;
  EXPECT_EQ(cf.op, loop::ControlFlow::Op::Loop);
  ASSERT_EQ(cf.bodies.size(), 1u);
  ASSERT_EQ(cf.carried.size(), 1u);
  ASSERT_EQ(cf.scanOutputs.size(), 1u);
  ASSERT_EQ(cf.captures[0].size(), 1u);
  EXPECT_EQ(cf.captures[0][0]->label, "w");
  // The call reads the initial value and the capture, and writes the outputs.
  std::vector<loop::Buffer *> reads = call->reads(), writes = call->writes();
  EXPECT_NE(std::find(reads.begin(), reads.end(), cf.carried[0].init), reads.end());
  EXPECT_NE(std::find(reads.begin(), reads.end(), cf.captures[0][0]), reads.end());
  EXPECT_NE(std::find(writes.begin(), writes.end(), cf.scanOutputs[0].buf), writes.end());
  EXPECT_NE(std::find(writes.begin(), writes.end(), cf.carried[0].spare), writes.end());
  // The body: cond, carried value and capture in; cond, carried value and scan out out.
  const loop::Program &body = cf.bodies[0]->prog;
  EXPECT_EQ(body.inputs.size(), 3u);
  EXPECT_EQ(body.outputs.size(), 3u);
  // The nested If is a Call kernel of the body.
  int nestedCalls = 0;
  for (auto &k : body.kernels)
    nestedCalls += k->kind == loop::KernelKind::Call;
  EXPECT_EQ(nestedCalls, 1) << loop::dump(body);
  std::vector<const loop::SubProgram *> subs;
  loop::collectSubPrograms(prog, subs);
  ASSERT_EQ(subs.size(), 3u); // then, else, body: inner ones first
  EXPECT_EQ(subs.back(), cf.bodies[0].get());
  // Memory plan: nothing the call reads shares a slot with what it writes.
  auto plan = sched::planMemory(prog, ctx);
  for (loop::Buffer *w : writes) {
    auto ws = plan.slotOf.find(w);
    if (ws == plan.slotOf.end()) continue;
    for (loop::Buffer *r : reads) {
      auto rs = plan.slotOf.find(r);
      if (r != w && rs != plan.slotOf.end()) EXPECT_NE(rs->second, ws->second) << r->name;
    }
  }
  EXPECT_NE(loop::dump(prog).find("call loop("), std::string::npos) << loop::dump(prog);
}

TEST(ControlFlow, UnusedCallIsDead) {
  sym::Context ctx;
  loop::Program p;
  auto *in = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Input, "x");
  auto *out = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Output, "y");
  auto *t = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Intermediate, "t");
  auto *u = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Intermediate, "u");
  auto live = std::make_shared<loop::ControlFlow>();
  live->reads = {in};
  live->writes = {t};
  auto dead = std::make_shared<loop::ControlFlow>();
  dead->reads = {in};
  dead->writes = {u};
  for (auto &cf : {live, dead}) {
    auto *k = p.newKernel(loop::KernelKind::Call);
    k->call = cf;
  }
  sym::Expr i = ctx.freshSymbol("i", 0, 3);
  auto *k = p.newKernel(loop::KernelKind::Pointwise);
  k->out = out;
  k->vars = {i};
  k->body = loop::load(t, i);
  sched::eliminateDeadKernels(p);
  ASSERT_EQ(p.kernels.size(), 2u);
  EXPECT_EQ(p.kernels[0]->call, live);
  sched::formGroups(p, ctx);
  ASSERT_EQ(p.groups.size(), 2u);
  EXPECT_TRUE(p.groups[0].isCall());
}

namespace {

/// vf, ys = Loop(M, cond, v): the body passes its condition on (Identity) or computes it
/// (i < 3); ys is a scan output.
const loop::ControlFlow &lowerLoopWithCondition(OnnxBuilder &b, sym::Context &ctx,
                                                loop::Program &prog, bool passCondition,
                                                std::unique_ptr<ir::Graph> &g) {
  constexpr int F = onnx::TensorProto::FLOAT, B = onnx::TensorProto::BOOL,
                I = onnx::TensorProto::INT64;
  b.input("M", {}, I);
  b.input("cond", {}, B);
  b.input("v", {2});
  b.initInt64("stop", {}, {3});
  auto *loop = b.node("Loop", {"M", "cond", "v"}, {"vf", "ys"}, "loop");
  onnx::GraphProto *body = graphAttr(loop, "body");
  addIo(body->mutable_input(), "i", I, {});
  addIo(body->mutable_input(), "c", B, {});
  addIo(body->mutable_input(), "v_in", F, {2});
  if (passCondition)
    addNode(body, "Identity", {"c"}, {"c_out"});
  else
    addNode(body, "Less", {"i", "stop"}, {"c_out"});
  addNode(body, "Neg", {"v_in"}, {"v_out"});
  body->add_output()->set_name("c_out");
  body->add_output()->set_name("v_out");
  body->add_output()->set_name("v_in");
  b.output("vf", {2});
  b.outputUntyped("ys");
  g = b.import(ctx);
  passes::optimizeGraph(*g);
  lower::Lowerer low(*g, prog);
  low.lowerGraph();
  for (auto &k : prog.kernels)
    if (k->kind == loop::KernelKind::Call) return *k->call;
  ADD_FAILURE() << "no Call kernel";
  return *prog.calls.at(0);
}

} // namespace

TEST(ControlFlow, LoopPassingConditionOnRunsCondTimesM) {
  OnnxBuilder b;
  sym::Context ctx;
  loop::Program prog;
  std::unique_ptr<ir::Graph> g;
  const loop::ControlFlow &cf = lowerLoopWithCondition(b, ctx, prog, true, g);
  // cond ? M : 0, evaluated before the run: output sizes stay known up front.
  EXPECT_EQ(cf.trips.name(), "loop.trips0");
  EXPECT_FALSE(cf.iterations.valid());
  for (const loop::RuntimeShapeValue &v : prog.shapeValues)
    EXPECT_EQ(v.phase, loop::ValuePhase::BeforeRun) << v.symbol.name();
  const loop::RuntimeShapeValue *trips = prog.shapeValue(cf.trips);
  ASSERT_NE(trips, nullptr);
  EXPECT_EQ(trips->phase, loop::ValuePhase::BeforeRun);
  EXPECT_EQ(g->findValue("ys")->shape[0], cf.trips);
}

TEST(ControlFlow, LoopEndingEarlyCountsIterationsAtRunTime) {
  OnnxBuilder b;
  sym::Context ctx;
  loop::Program prog;
  std::unique_ptr<ir::Graph> g;
  const loop::ControlFlow &cf = lowerLoopWithCondition(b, ctx, prog, false, g);
  // The body decides when to stop: the scan output's length is a late symbol bounded by M.
  ASSERT_TRUE(cf.iterations.valid());
  EXPECT_EQ(cf.trips.name(), "M");
  std::vector<const loop::RuntimeShapeValue *> inOrder;
  for (const loop::RuntimeShapeValue &v : prog.shapeValues)
    if (v.phase == loop::ValuePhase::InOrder) inOrder.push_back(&v);
  ASSERT_EQ(inOrder.size(), 1u);
  EXPECT_EQ(inOrder[0]->symbol, cf.iterations);
  EXPECT_EQ(inOrder[0]->bound, cf.trips);
  EXPECT_EQ(inOrder[0]->producer, loop::RuntimeShapeValue::Producer::SymbolOut);
  EXPECT_EQ(g->findValue("ys")->shape[0], cf.iterations);
}
