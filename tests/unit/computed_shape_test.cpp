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

/// The value kernels (Kernel::lateOut) of a scheduled program.
std::vector<const loop::Kernel *> valueKernels(const loop::Program &p) {
  std::vector<const loop::Kernel *> r;
  for (auto &k : p.kernels)
    if (!k->lateOut.empty()) r.push_back(k.get());
  return r;
}

const loop::LateSymbol *lateOf(const loop::Program &p, sym::Expr s) {
  for (const loop::LateSymbol &l : p.lateSymbols)
    if (l.symbol == s) return &l;
  return nullptr;
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
  sym::Expr k = vks[0]->lateOut.at(0);
  ASSERT_TRUE(k.valid());
  EXPECT_EQ(k.name(), "topk.k0");
  const loop::LateSymbol *ls = lateOf(l->prog, k);
  ASSERT_NE(ls, nullptr);
  EXPECT_TRUE(ls->bound.isConst(20)); // allocated for the axis length
  EXPECT_TRUE(ls->limit.isConst(20)); // and checked against it during the run
  EXPECT_EQ(ls->lo, 0);
  EXPECT_EQ(l->ctx.symbolRange(k).hi, 20);
  EXPECT_EQ(l->prog.outputs[0]->shape.at(0), k);
  EXPECT_TRUE(l->prog.symbolKernels.empty());
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
  for (const sym::Expr &s : vks[0]->lateOut)
    late += s.valid();
  EXPECT_EQ(late, 1) << loop::dump(l->prog);
  sym::Expr len = vks[0]->lateOut.at(5);
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
  const loop::LateSymbol *ls = lateOf(l->prog, out->shape[0]);
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
  const loop::LateSymbol *k = lateOf(l->prog, vks[0]->lateOut.at(0));
  ASSERT_NE(k, nullptr);
  ASSERT_TRUE(k->limit.isSymbol());
  EXPECT_EQ(k->limit.name(), "nms.count");
  EXPECT_TRUE(k->bound.isConst(16)) << sym::toString(k->bound);
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
