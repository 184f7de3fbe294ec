// Shape values the model computes (not only from inputs): value kernels whose results are
// late symbols, their bounds and limits, what stays refused; and gathers of gathers.
#include "loop/interp.h"
#include "lower/lowerer.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <gtest/gtest.h>

using namespace kiln;
using kiln::test::OnnxBuilder;

namespace {

struct Lowered {
  sym::Context ctx;
  std::unique_ptr<ir::Graph> g;
  loop::Program prog;
};

std::unique_ptr<Lowered> lowerModel(OnnxBuilder &b, frontend::ImportOptions opts = {}) {
  auto l = std::make_unique<Lowered>();
  l->g = b.import(l->ctx, opts);
  passes::inferAndFold(*l->g);
  passes::eliminateDeadCode(*l->g);
  lower::Lowerer lw(*l->g, l->prog);
  lw.lowerGraph();
  sched::scheduleProgram(l->prog, l->ctx, sched::Target::cpu());
  return l;
}

/// The value kernels (Kernel::valueOut) of a scheduled program that run in program order.
std::vector<const loop::Kernel *> valueKernels(const loop::Program &p) {
  std::vector<const loop::Kernel *> r;
  for (auto &k : p.kernels)
    if (!k->valueOut.empty() && !p.runsBeforeRun(*k)) r.push_back(k.get());
  return r;
}

/// The value kernels that run before the run (in bind_shapes).
std::vector<const loop::Kernel *> beforeRunKernels(const loop::Program &p) {
  std::vector<const loop::Kernel *> r;
  for (auto &k : p.kernels)
    if (p.runsBeforeRun(*k)) r.push_back(k.get());
  return r;
}

/// The in-order run-time value of symbol s, or nullptr.
const loop::RuntimeShapeValue *lateOf(const loop::Program &p, sym::Expr s) {
  const loop::RuntimeShapeValue *v = p.shapeValue(s);
  return v && v->phase == loop::ValuePhase::InOrder ? v : nullptr;
}

/// Whether a scheduled group holds k.
bool inAGroup(const loop::Program &p, const loop::Kernel *k) {
  for (const loop::KernelGroup &g : p.groups)
    for (const loop::Kernel *m : g.kernels)
      if (m == k) return true;
  return false;
}

/// count = number of x > 0.5 (a reduction kernel), as a [1] int64 tensor named "count".
void countAbove(OnnxBuilder &b) {
  b.initFloat("thr", {}, {0.5f});
  b.node("Greater", {"x", "thr"}, {"above"});
  OnnxBuilder::attrInt(b.node("Cast", {"above"}, {"ai"}), "to", onnx::TensorProto::INT64);
  OnnxBuilder::attrInt(b.node("ReduceSum", {"ai"}, {"count"}), "keepdims", 1);
}

} // namespace

TEST(ComputedShape, TopKWithComputedKIsALateSymbolBoundByTheAxis) {
  OnnxBuilder b;
  b.input("x", {20});
  countAbove(b);
  b.initInt64("K", {1}, {5});
  b.node("Min", {"count", "K"}, {"k"});
  b.node("TopK", {"x", "k"}, {"v", "i"}, "topk");
  b.outputUntyped("v");
  b.outputUntyped("i", onnx::TensorProto::INT64);
  auto l = lowerModel(b);
  auto vks = valueKernels(l->prog);
  ASSERT_EQ(vks.size(), 1u) << loop::dump(l->prog);
  sym::Expr k = vks[0]->valueOut.at(0);
  ASSERT_TRUE(k.valid());
  EXPECT_EQ(k.name(), "topk.k0");
  const loop::RuntimeShapeValue *ls = lateOf(l->prog, k);
  ASSERT_NE(ls, nullptr);
  EXPECT_TRUE(ls->bound.isConst(20)); // allocated for the axis length
  EXPECT_TRUE(ls->limit.isConst(20)); // and checked against it during the run
  EXPECT_EQ(ls->lo, 0);
  EXPECT_EQ(l->ctx.symbolRange(k).hi, 20);
  EXPECT_EQ(l->prog.outputs[0]->shape.at(0), k);
  EXPECT_TRUE(beforeRunKernels(l->prog).empty());
  EXPECT_EQ(loop::shapeValuePhase(l->prog, *vks[0]), loop::ValuePhase::InOrder);
  EXPECT_EQ(lateOf(l->prog, k)->producer, loop::RuntimeShapeValue::Producer::ValueKernel);
  // The value kernel runs alone: the wrapper reads its result right after it.
  for (const loop::KernelGroup &g : l->prog.groups)
    for (const loop::Kernel *m : g.kernels)
      if (m == vks[0]) EXPECT_EQ(g.kernels.size(), 1u);
}

TEST(ComputedShape, SliceWithComputedEndKeepsOtherDimsExact) {
  OnnxBuilder b;
  b.input("x", {3, 10});
  b.input("s", {10});
  b.initFloat("thr", {}, {0.5f});
  b.node("Greater", {"s", "thr"}, {"above"});
  OnnxBuilder::attrInt(b.node("Cast", {"above"}, {"ai"}), "to", onnx::TensorProto::INT64);
  OnnxBuilder::attrInt(b.node("ReduceSum", {"ai"}, {"e"}), "keepdims", 1);
  b.initInt64("starts", {1}, {0});
  b.initInt64("axes", {1}, {1});
  b.node("Slice", {"x", "starts", "e", "axes"}, {"y"}, "slice");
  b.outputUntyped("y");
  auto l = lowerModel(b);
  const loop::Buffer *out = l->prog.outputs.at(0);
  ASSERT_EQ(out->shape.size(), 2u);
  EXPECT_TRUE(out->shape[0].isConst(3)) << "dim 0 is not sliced: no late symbol";
  auto vks = valueKernels(l->prog);
  ASSERT_EQ(vks.size(), 1u) << loop::dump(l->prog);
  // Per dim (begin, step, length): only dim 1's length is computed by the model.
  int late = 0;
  for (const sym::Expr &s : vks[0]->valueOut)
    late += s.valid();
  EXPECT_EQ(late, 1) << loop::dump(l->prog);
  sym::Expr len = vks[0]->valueOut.at(5);
  ASSERT_TRUE(len.valid());
  EXPECT_TRUE(lateOf(l->prog, len)->bound.isConst(10));
  for (sym::Expr s : sym::freeSymbols(out->shape[1]))
    EXPECT_EQ(s, len);
}

TEST(ComputedShape, ReshapeRowsAreBoundByTheElementCount) {
  // Reshape(x[24], [k, 4]) with k computed: k <= 24 / 4, and the count is a run-time guard.
  OnnxBuilder b;
  b.input("x", {24});
  b.input("d", {2}, onnx::TensorProto::INT64);
  OnnxBuilder::attrInt(b.node("ReduceMax", {"d"}, {"k"}), "keepdims", 1);
  b.initInt64("cols", {1}, {4});
  OnnxBuilder::attrInt(b.node("Concat", {"k", "cols"}, {"shape"}), "axis", 0);
  b.node("Reshape", {"x", "shape"}, {"r"}, "reshape");
  b.node("Relu", {"r"}, {"y"});
  b.outputUntyped("y");
  auto l = lowerModel(b);
  const loop::Buffer *out = l->prog.outputs.at(0);
  ASSERT_EQ(out->shape.size(), 2u);
  EXPECT_TRUE(out->shape[1].isConst(4));
  ASSERT_TRUE(out->shape[0].isSymbol());
  const loop::RuntimeShapeValue *ls = lateOf(l->prog, out->shape[0]);
  ASSERT_NE(ls, nullptr);
  EXPECT_TRUE(ls->bound.isConst(6)) << sym::toString(ls->bound);
  bool countGuard = false;
  for (const ir::ShapeGuard &g : l->g->guards)
    countGuard |= g.what.find("element count") != std::string::npos;
  EXPECT_TRUE(countGuard);
}

TEST(ComputedShape, LimitNamingAnEarlierLateSymbolIsBoundByItsBound) {
  // k = min(K, number of NMS survivors) as torchvision's _topk_min exports it: its limit is
  // the NMS count (a late symbol), its bound that count's bound (1 * 2 * 8 boxes).
  OnnxBuilder b;
  b.input("boxes", {1, 8, 4});
  b.input("scores", {1, 2, 8});
  b.initInt64("maxout", {1}, {8});
  b.initFloat("iou", {1}, {0.5f});
  b.node("NonMaxSuppression", {"boxes", "scores", "maxout", "iou"}, {"sel"}, "nms");
  b.initInt64("two", {}, {2});
  OnnxBuilder::attrInt(b.node("Gather", {"sel", "two"}, {"idx"}), "axis", 1);
  b.node("Shape", {"idx"}, {"n"});
  b.initInt64("K", {1}, {3});
  OnnxBuilder::attrInt(b.node("Concat", {"K", "n"}, {"cands"}), "axis", 0);
  OnnxBuilder::attrInt(b.node("ReduceMin", {"cands"}, {"k"}), "keepdims", 1);
  OnnxBuilder::attrInt(b.node("Cast", {"idx"}, {"fidx"}), "to", onnx::TensorProto::FLOAT);
  b.node("TopK", {"fidx", "k"}, {"v", "i"}, "topk");
  b.outputUntyped("v");
  auto l = lowerModel(b);
  auto vks = valueKernels(l->prog);
  ASSERT_EQ(vks.size(), 1u) << loop::dump(l->prog);
  const loop::RuntimeShapeValue *k = lateOf(l->prog, vks[0]->valueOut.at(0));
  ASSERT_NE(k, nullptr);
  ASSERT_TRUE(k->limit.isSymbol());
  EXPECT_EQ(k->limit.name(), "nms.count");
  EXPECT_TRUE(k->bound.isConst(16)) << sym::toString(k->bound);
}

TEST(ComputedShape, AValueReadingOnlyInputsRunsBeforeTheRun) {
  // The same TopK, but k = |d| from the model input d: the one phase rule puts its value
  // kernel before the run (bind_shapes), outside every group, checked against [0, 2^31-1]
  // like an input dim; nothing is computed in program order.
  OnnxBuilder b;
  b.input("x", {20});
  b.input("d", {1}, onnx::TensorProto::INT64);
  b.node("Abs", {"d"}, {"k"});
  b.node("TopK", {"x", "k"}, {"v", "i"}, "topk");
  b.outputUntyped("v");
  auto l = lowerModel(b);
  EXPECT_TRUE(valueKernels(l->prog).empty()) << loop::dump(l->prog);
  auto before = beforeRunKernels(l->prog);
  ASSERT_EQ(before.size(), 1u) << loop::dump(l->prog);
  EXPECT_EQ(loop::shapeValuePhase(l->prog, *before[0]), loop::ValuePhase::BeforeRun);
  EXPECT_FALSE(inAGroup(l->prog, before[0]));
  sym::Expr k = before[0]->valueOut.at(0);
  const loop::RuntimeShapeValue *v = l->prog.shapeValue(k);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->phase, loop::ValuePhase::BeforeRun);
  EXPECT_TRUE(v->input.empty()); // computed (a Min), not an input element as given
  EXPECT_EQ(v->lo, 0);
  EXPECT_TRUE(v->limit.isConst(INT32_MAX));
  EXPECT_EQ(l->prog.outputs[0]->shape.at(0), k);
}

TEST(ComputedShape, AnInputElementIsAValueKernelLoadingIt) {
  // ConstantOfShape(s) with the shape s a model input: each element of s is a run-time
  // value named after the input, produced by one value kernel that loads s (no separate
  // list of data symbols), before the run, and checked with a message naming the input.
  OnnxBuilder b;
  b.input("s", {2}, onnx::TensorProto::INT64);
  b.node("ConstantOfShape", {"s"}, {"y"}, "fill");
  b.outputUntyped("y");
  auto l = lowerModel(b);
  auto before = beforeRunKernels(l->prog);
  ASSERT_EQ(before.size(), 1u) << loop::dump(l->prog);
  const loop::Kernel *k = before[0];
  EXPECT_EQ(k->kind, loop::KernelKind::Pointwise);
  ASSERT_EQ(k->valueOut.size(), 2u);
  std::vector<loop::Buffer *> reads = k->reads();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0]->kind, loop::BufferKind::Input);
  EXPECT_EQ(reads[0]->label, "s");
  for (int64_t e = 0; e < 2; ++e) {
    const loop::RuntimeShapeValue *v = l->prog.shapeValue(k->valueOut[e]);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->symbol.name(), "s[" + std::to_string(e) + "]");
    EXPECT_EQ(v->input, "s");
    EXPECT_EQ(v->element, e);
    EXPECT_EQ(v->phase, loop::ValuePhase::BeforeRun);
    EXPECT_EQ(v->producer, loop::RuntimeShapeValue::Producer::ValueKernel);
    EXPECT_EQ(l->prog.outputs.at(0)->shape.at(e), v->symbol);
  }
  EXPECT_FALSE(inAGroup(l->prog, k));
}

TEST(ComputedShape, PhaseRuleLooksAtWhatTheValueReads) {
  // shapeValuePhase on hand-built kernels: inputs only -> before the run; an intermediate
  // buffer, or a symbol computed during the run -> in program order.
  sym::Context ctx;
  loop::Program p;
  loop::Buffer *in = p.newBuffer(DType::Int64, {ctx.constant(2)}, loop::BufferKind::Input, "in");
  loop::Buffer *mid =
      p.newBuffer(DType::Int64, {ctx.constant(2)}, loop::BufferKind::Intermediate, "mid");
  loop::Buffer *out =
      p.newBuffer(DType::Int64, {ctx.constant(1)}, loop::BufferKind::Intermediate, "out");
  loop::Kernel k;
  k.out = out;
  k.body = loop::load(in, ctx.constant(1));
  EXPECT_EQ(loop::shapeValuePhase(p, k), loop::ValuePhase::BeforeRun);
  k.body = loop::binary(loop::BinaryOp::Add, loop::load(in, ctx.constant(0)),
                        loop::load(mid, ctx.constant(0)));
  EXPECT_EQ(loop::shapeValuePhase(p, k), loop::ValuePhase::InOrder);
  sym::Expr n = ctx.symbol("nz.count", 0, 2);
  loop::RuntimeShapeValue count;
  count.symbol = n;
  count.producer = loop::RuntimeShapeValue::Producer::SymbolOut;
  count.phase = loop::ValuePhase::InOrder;
  count.bound = ctx.constant(2);
  p.shapeValues.push_back(count);
  k.body = loop::binary(loop::BinaryOp::Add, loop::load(in, ctx.constant(0)), loop::symInt(n));
  EXPECT_EQ(loop::shapeValuePhase(p, k), loop::ValuePhase::InOrder);
  k.body = loop::load(in, n - 1); // an input read where a value computed in the run says
  EXPECT_EQ(loop::shapeValuePhase(p, k), loop::ValuePhase::InOrder);
}

TEST(ComputedShape, ExpandByAComputedShapeIsRefusedByName) {
  OnnxBuilder b;
  b.input("x", {1});
  b.input("d", {2}, onnx::TensorProto::INT64);
  OnnxBuilder::attrInt(b.node("ReduceMax", {"d"}, {"n"}), "keepdims", 1);
  b.node("Expand", {"x", "n"}, {"y"}, "expand");
  b.outputUntyped("y");
  try {
    lowerModel(b);
    FAIL() << "a computed Expand shape compiled";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("node 'expand' (Expand"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is computed by the model at run time"), std::string::npos)
        << e.what();
  }
}

TEST(ComputedShape, GatherOfAGatherBindsBothIndices) {
  // y = x[i1][i2] with run-time indices on both levels (detection heads do this after NMS).
  // The inputs are then given contents and the output kernel is run by the interpreter, so
  // the loop IR's index bindings are evaluated for real.
  OnnxBuilder b;
  b.input("x", {6});
  b.input("i1", {3}, onnx::TensorProto::INT64);
  b.input("i2", {2}, onnx::TensorProto::INT64);
  b.node("Gather", {"x", "i1"}, {"a"});
  b.node("Gather", {"a", "i2"}, {"y"});
  b.outputUntyped("y");
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  loop::Program prog;
  lower::Lowerer lw(*g, prog);
  lw.lowerGraph();
  auto tensor = [](DType t, std::vector<double> v) {
    auto d = std::make_shared<ir::TensorData>();
    d->dtype = t;
    d->dims = {static_cast<int64_t>(v.size())};
    d->bytes.resize(v.size() * dtypeSize(t));
    for (size_t i = 0; i < v.size(); ++i)
      loop::storeScalar(*d, static_cast<int64_t>(i), v[i], static_cast<int64_t>(v[i]));
    return d;
  };
  std::vector<std::shared_ptr<ir::TensorData>> data = {
      tensor(DType::Float32, {10, 11, 12, 13, 14, 15}), tensor(DType::Int64, {5, -1, 2}),
      tensor(DType::Int64, {2, 0})};
  for (size_t i = 0; i < prog.inputs.size(); ++i) {
    prog.inputs[i]->kind = loop::BufferKind::Constant;
    prog.inputs[i]->data = data.at(i);
  }
  ASSERT_EQ(prog.kernels.size(), 1u) << loop::dump(prog);
  const loop::Kernel &k = *prog.kernels[0];
  loop::Interpreter interp(prog, ctx);
  auto y = interp.evaluate(DType::Float32, {2}, k.vars, k.body);
  EXPECT_EQ(y->getDouble(0), 12.0); // a[2] = x[2]
  EXPECT_EQ(y->getDouble(1), 15.0); // a[0] = x[5]
}
