// Lowering to loop IR, scheduling (dead kernels, memory plan) and the loop interpreter.
#include "loop/interp.h"
#include "lower/lowerer.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "sched/schedule.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <tuple>

using namespace kiln;
using kiln::test::OnnxBuilder;

namespace {

struct Lowered {
  sym::Context ctx;
  std::unique_ptr<ir::Graph> g;
  loop::Program prog;
};

/// Imports, folds and lowers; then the scheduling pipeline unless `schedule` is false.
std::unique_ptr<Lowered> lowerModel(OnnxBuilder &b, frontend::ImportOptions opts = {},
                                    bool schedule = true) {
  auto l = std::make_unique<Lowered>();
  l->g = b.import(l->ctx, opts);
  passes::inferAndFold(*l->g);
  passes::eliminateDeadCode(*l->g);
  passes::eliminateCommonSubexpressions(*l->g);
  passes::eliminateDeadCode(*l->g);
  lower::Lowerer lw(*l->g, l->prog);
  lw.lowerGraph();
  if (schedule) sched::scheduleProgram(l->prog, l->ctx, sched::Target::cpu());
  return l;
}

int countKind(const loop::Program &p, loop::KernelKind k) {
  int n = 0;
  for (auto &kern : p.kernels)
    n += kern->kind == k;
  return n;
}

} // namespace

TEST(Lower, PointwiseChainIsOneKernel) {
  OnnxBuilder b;
  b.input("x", {4, 8});
  b.initFloat("two", {}, {2.0f});
  b.node("Relu", {"x"}, {"a"});
  b.node("Sigmoid", {"a"}, {"c"});
  b.node("Mul", {"c", "two"}, {"d"});
  b.node("Tanh", {"d"}, {"e"});
  b.node("Exp", {"e"}, {"y"});
  b.output("y", {4, 8});
  auto l = lowerModel(b);
  ASSERT_EQ(l->prog.kernels.size(), 1u) << loop::dump(l->prog);
  const loop::Kernel &k = *l->prog.kernels[0];
  EXPECT_EQ(k.kind, loop::KernelKind::Pointwise);
  ASSERT_EQ(l->prog.outputs.size(), 1u);
  EXPECT_EQ(k.out, l->prog.outputs[0]);
  // The fused body reads the input directly: no intermediate buffers at all.
  for (auto &buf : l->prog.buffers)
    EXPECT_NE(buf->kind, loop::BufferKind::Intermediate) << loop::dump(l->prog);
}

TEST(Lower, DynamicBatchKernelKeepsSymbolicShape) {
  OnnxBuilder b;
  b.input("x", {"batch", 8});
  b.node("Relu", {"x"}, {"a"});
  b.node("Neg", {"a"}, {"y"});
  b.output("y", {"batch", 8});
  frontend::ImportOptions opts;
  opts.dynamic["batch"] = {1, 16};
  auto l = lowerModel(b, opts);
  ASSERT_EQ(l->prog.kernels.size(), 1u) << loop::dump(l->prog);
  const loop::Buffer *out = l->prog.outputs[0];
  ASSERT_EQ(out->shape.size(), 2u);
  EXPECT_EQ(out->shape[0], *l->ctx.findSymbol("batch"));
  EXPECT_TRUE(out->shape[1].isConst(8));
}

TEST(Lower, SymbolicReshapeNeedsNoShapeKernels) {
  // Shape -> Gather -> Unsqueeze -> Concat -> Reshape on a dynamic batch: the shape
  // arithmetic is folded at compile time, so the only kernel is the copy into the output.
  OnnxBuilder b(13);
  b.input("x", {"batch", 4, 6});
  b.initInt64("idx0", {}, {0});
  b.initInt64("axes0", {1}, {0});
  b.initInt64("minus1", {1}, {-1});
  b.node("Shape", {"x"}, {"shp"});
  b.node("Gather", {"shp", "idx0"}, {"bdim"});
  b.node("Unsqueeze", {"bdim", "axes0"}, {"bdim1"});
  OnnxBuilder::attrInt(b.node("Concat", {"bdim1", "minus1"}, {"newshape"}), "axis", 0);
  b.node("Reshape", {"x", "newshape"}, {"r"});
  b.node("Relu", {"r"}, {"y"});
  b.outputUntyped("y");
  frontend::ImportOptions opts;
  opts.dynamic["batch"] = {1, 32};
  auto l = lowerModel(b, opts);
  ASSERT_EQ(l->prog.kernels.size(), 1u) << loop::dump(l->prog);
  for (auto &buf : l->prog.buffers) {
    if (buf->kind != loop::BufferKind::Constant) {
      EXPECT_NE(buf->dtype, DType::Int64) << "shape tensor materialised: " << buf->name << "\n"
                                          << loop::dump(l->prog);
    }
  }
  for (auto &k : l->prog.kernels)
    for (loop::Buffer *rd : k->reads())
      EXPECT_NE(rd->dtype, DType::Int64) << "kernel reads a shape tensor: " << rd->name;
  const loop::Buffer *out = l->prog.outputs[0];
  ASSERT_EQ(out->shape.size(), 2u);
  EXPECT_EQ(out->shape[0], *l->ctx.findSymbol("batch"));
  EXPECT_TRUE(out->shape[1].isConst(24));
}

TEST(Lower, ReshapeAndTransposeAreViews) {
  OnnxBuilder b;
  b.input("x", {4, 6});
  b.initInt64("shape", {2}, {6, 4});
  OnnxBuilder::attrInts(b.node("Transpose", {"x"}, {"t"}), "perm", {1, 0});
  b.node("Reshape", {"t", "shape"}, {"r"});
  b.node("Relu", {"r"}, {"y"});
  b.output("y", {6, 4});
  auto l = lowerModel(b);
  // Transpose and Reshape fold into the Relu's index expression: one kernel, no copies.
  EXPECT_EQ(l->prog.kernels.size(), 1u) << loop::dump(l->prog);
  for (auto &buf : l->prog.buffers)
    EXPECT_NE(buf->kind, loop::BufferKind::Intermediate) << loop::dump(l->prog);
}

TEST(Lower, ReshapeAfterComputeIsFree) {
  OnnxBuilder b;
  b.input("x", {4, 6});
  b.initInt64("shape", {1}, {24});
  b.node("Relu", {"x"}, {"a"});
  b.node("Reshape", {"a", "shape"}, {"r"});
  b.node("Neg", {"r"}, {"y"});
  b.output("y", {24});
  auto l = lowerModel(b);
  EXPECT_EQ(l->prog.kernels.size(), 1u) << loop::dump(l->prog);
}

TEST(Lower, SoftmaxHasReductions) {
  OnnxBuilder b;
  b.input("x", {4, 16});
  OnnxBuilder::attrInt(b.node("Softmax", {"x"}, {"y"}), "axis", -1);
  b.output("y", {4, 16});
  auto l = lowerModel(b, {}, false); // before scheduling unrolls the 16-tap reductions
  EXPECT_GE(countKind(l->prog, loop::KernelKind::Reduction), 1) << loop::dump(l->prog);
  EXPECT_LE(l->prog.kernels.size(), 4u) << loop::dump(l->prog);
  EXPECT_EQ(l->prog.kernels.back()->out, l->prog.outputs[0]);
}

TEST(Sched, MemoryPlanReusesSlotsInChain) {
  // Four matmuls in a row: each intermediate is an extern output (a real buffer) of the
  // same size, and each dies after the next matmul, so two slots suffice.
  OnnxBuilder b;
  b.input("x", {8, 8});
  std::vector<float> w(64, 0.0f);
  for (int i = 0; i < 8; ++i)
    w[i * 8 + i] = 1.0f;
  b.initFloat("w", {8, 8}, w);
  b.node("MatMul", {"x", "w"}, {"t1"});
  b.node("Sigmoid", {"t1"}, {"s1"});
  b.node("MatMul", {"s1", "w"}, {"t2"});
  b.node("Sigmoid", {"t2"}, {"s2"});
  b.node("MatMul", {"s2", "w"}, {"t3"});
  b.node("Sigmoid", {"t3"}, {"s3"});
  b.node("MatMul", {"s3", "w"}, {"t4"});
  b.node("Sigmoid", {"t4"}, {"y"});
  b.output("y", {8, 8});
  auto l = lowerModel(b);
  int intermediates = 0;
  for (auto &buf : l->prog.buffers)
    intermediates += buf->kind == loop::BufferKind::Intermediate;
  ASSERT_GE(intermediates, 4) << loop::dump(l->prog);
  auto plan = sched::planMemory(l->prog, l->ctx);
  EXPECT_LT(plan.slots.size(), static_cast<size_t>(intermediates)) << loop::dump(l->prog);
  EXPECT_LE(plan.slots.size(), 2u) << loop::dump(l->prog);
  // Every intermediate gets a slot, big enough for it.
  for (auto &buf : l->prog.buffers) {
    if (buf->kind != loop::BufferKind::Intermediate) continue;
    auto it = plan.slotOf.find(buf.get());
    ASSERT_NE(it, plan.slotOf.end()) << buf->name;
    ASSERT_LT(static_cast<size_t>(it->second), plan.slots.size());
    EXPECT_TRUE(sym::provablyGE(plan.slots[it->second].bytes, buf->numel(l->ctx) * 4)) << buf->name;
  }
  // Two buffers live at the same time never share a slot: a kernel's inputs and its
  // output are live together.
  for (auto &k : l->prog.kernels) {
    auto out =
        plan.slotOf.find(k->out ? k->out : (k->ext.outputs.empty() ? nullptr : k->ext.outputs[0]));
    if (out == plan.slotOf.end()) continue;
    for (loop::Buffer *in : k->reads()) {
      auto s = plan.slotOf.find(in);
      if (s != plan.slotOf.end()) {
        EXPECT_NE(s->second, out->second) << "kernel " << k->id << " reads and writes one slot";
      }
    }
  }
}

TEST(Sched, DeadKernelsRemoved) {
  sym::Context ctx;
  loop::Program p;
  auto *in = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Input, "x");
  p.inputs.push_back(in);
  auto *out = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Output, "y");
  p.outputs.push_back(out);
  auto *dead = p.newBuffer(DType::Float32, {ctx.constant(4)}, loop::BufferKind::Intermediate, "d");
  sym::Expr i = ctx.freshSymbol("i", 0, 3);
  auto *k1 = p.newKernel(loop::KernelKind::Pointwise);
  k1->out = dead;
  k1->vars = {i};
  k1->body = loop::unary(loop::UnaryOp::Exp, loop::load(in, i));
  auto *k2 = p.newKernel(loop::KernelKind::Pointwise);
  k2->out = out;
  k2->vars = {i};
  k2->body = loop::unary(loop::UnaryOp::Neg, loop::load(in, i));
  sched::eliminateDeadKernels(p);
  ASSERT_EQ(p.kernels.size(), 1u);
  EXPECT_EQ(p.kernels[0]->out, out);
}

namespace {

std::shared_ptr<ir::TensorData> floatTensor(std::vector<int64_t> dims, std::vector<float> v) {
  auto t = std::make_shared<ir::TensorData>();
  t->dtype = DType::Float32;
  t->dims = std::move(dims);
  t->bytes.resize(v.size() * sizeof(float));
  std::memcpy(t->bytes.data(), v.data(), t->bytes.size());
  return t;
}

} // namespace

TEST(Interp, TransposeScaleAndRowSum) {
  sym::Context ctx;
  loop::Program p;
  // c = [[1,2,3],[4,5,6]]
  auto *c = p.newBuffer(DType::Float32, {ctx.constant(2), ctx.constant(3)},
                        loop::BufferKind::Constant, "c");
  c->data = floatTensor({2, 3}, {1, 2, 3, 4, 5, 6});
  p.constants.push_back(c);
  // t[i][j] = 2 * c[j][i] + 1   (3x2)
  auto *t = p.newBuffer(DType::Float32, {ctx.constant(3), ctx.constant(2)},
                        loop::BufferKind::Intermediate, "t");
  sym::Expr i = ctx.freshSymbol("i", 0, 2), j = ctx.freshSymbol("j", 0, 1);
  auto *k1 = p.newKernel(loop::KernelKind::Pointwise);
  k1->out = t;
  k1->vars = {i, j};
  k1->body = loop::binary(loop::BinaryOp::Add,
                          loop::binary(loop::BinaryOp::Mul, loop::constant(DType::Float32, 2.0),
                                       loop::load(c, j * 3 + i)),
                          loop::constant(DType::Float32, 1.0));
  // s[i] = sum_r t[i][r]  (3)
  auto *s = p.newBuffer(DType::Float32, {ctx.constant(3)}, loop::BufferKind::Intermediate, "s");
  sym::Expr i2 = ctx.freshSymbol("i", 0, 2), r = ctx.freshSymbol("r", 0, 1);
  auto *k2 = p.newKernel(loop::KernelKind::Reduction);
  k2->out = s;
  k2->vars = {i2};
  k2->rvars = {r};
  k2->rsizes = {ctx.constant(2)};
  k2->rop = loop::ReduceOp::Sum;
  k2->body = loop::load(t, i2 * 2 + r);
  // m[0] = max over all of c (6 elements)
  auto *m = p.newBuffer(DType::Float32, {ctx.constant(1)}, loop::BufferKind::Intermediate, "m");
  sym::Expr z = ctx.freshSymbol("z", 0, 0), q = ctx.freshSymbol("q", 0, 5);
  auto *k3 = p.newKernel(loop::KernelKind::Reduction);
  k3->out = m;
  k3->vars = {z};
  k3->rvars = {q};
  k3->rsizes = {ctx.constant(6)};
  k3->rop = loop::ReduceOp::Max;
  k3->body = loop::unary(loop::UnaryOp::Neg, loop::load(c, q));

  loop::Interpreter interp(p, ctx);
  const ir::TensorData &td = interp.bufferData(t);
  ASSERT_EQ(td.numel(), 6);
  const float wantT[] = {3, 9, 5, 11, 7, 13};
  for (int e = 0; e < 6; ++e)
    EXPECT_FLOAT_EQ(td.as<float>()[e], wantT[e]) << "t[" << e << "]";
  const ir::TensorData &sd = interp.bufferData(s);
  ASSERT_EQ(sd.numel(), 3);
  const float wantS[] = {12, 16, 20};
  for (int e = 0; e < 3; ++e)
    EXPECT_FLOAT_EQ(sd.as<float>()[e], wantS[e]) << "s[" << e << "]";
  const ir::TensorData &md = interp.bufferData(m);
  ASSERT_EQ(md.numel(), 1);
  EXPECT_FLOAT_EQ(md.as<float>()[0], -1.0f);
}

TEST(Interp, EvaluateBodyWithSymbolicIndex) {
  sym::Context ctx;
  loop::Program p;
  loop::Interpreter interp(p, ctx);
  sym::Expr i = ctx.freshSymbol("i", 0, 3), j = ctx.freshSymbol("j", 0, 2);
  // v[i][j] = floor_div(7*i + j, 3) - mod(7*i + j, 3), as float
  auto body = loop::cast(loop::symInt(floorDiv(i * 7 + j, 3) - mod(i * 7 + j, 3)), DType::Float32);
  auto out = interp.evaluate(DType::Float32, {4, 3}, {i, j}, body);
  ASSERT_EQ(out->numel(), 12);
  for (int a = 0; a < 4; ++a)
    for (int bb = 0; bb < 3; ++bb) {
      int v = 7 * a + bb;
      EXPECT_FLOAT_EQ(out->as<float>()[a * 3 + bb], static_cast<float>(v / 3 - v % 3));
    }
}

TEST(Sched, SmallReductionsUnrollIntoPointwise) {
  // A 3x3 max pool (9 taps) becomes a pointwise kernel; the interpreter's result must not
  // change; a 1000-wide row max stays a reduction.
  OnnxBuilder b;
  b.input("x", {1, 2, 6, 6});
  b.input("r", {4, 1000});
  auto *mp = b.node("MaxPool", {"x"}, {"y"}, "pool");
  OnnxBuilder::attrInts(mp, "kernel_shape", {3, 3});
  OnnxBuilder::attrInts(mp, "pads", {1, 1, 1, 1});
  auto *rm = b.node("ReduceMax", {"r"}, {"m"}, "rowmax");
  OnnxBuilder::attrInts(rm, "axes", {1});
  b.output("y", {1, 2, 6, 6});
  b.output("m", {4, 1});
  auto l = lowerModel(b, {}, false);
  ASSERT_EQ(countKind(l->prog, loop::KernelKind::Reduction), 2) << loop::dump(l->prog);
  sched::unrollSmallReductions(l->prog, l->ctx);
  EXPECT_EQ(countKind(l->prog, loop::KernelKind::Reduction), 1) << loop::dump(l->prog);
  for (auto &k : l->prog.kernels)
    if (k->out->shape.size() == 4) {
      EXPECT_EQ(k->kind, loop::KernelKind::Pointwise);
      EXPECT_TRUE(k->rvars.empty());
    }
}

// Sequence/optional graph values cross the C API as tensors: a sequence input is N tensor
// inputs name.K, a sequence output one output per item, an optional output adds
// name.has_value; an absent optional input has no input at all.
TEST(Lower, SequenceAndOptionalGraphIO) {
  OnnxBuilder b(18);
  auto *s = b.graph().add_input();
  s->set_name("s");
  s->mutable_type()
      ->mutable_sequence_type()
      ->mutable_elem_type()
      ->mutable_tensor_type()
      ->set_elem_type(onnx::TensorProto::FLOAT);
  auto *o = b.graph().add_input();
  o->set_name("o");
  OnnxBuilder::setType(o, "o", onnx::TensorProto::FLOAT, {2});
  onnx::TypeProto inner = o->type();
  *o->mutable_type()->mutable_optional_type()->mutable_elem_type() = inner;
  b.input("t", {3});
  b.node("SequenceInsert", {"s", "t"}, {"y"});
  b.node("OptionalHasElement", {"o"}, {"h"});
  b.node("Optional", {"t"}, {"p"});
  auto *y = b.graph().add_output();
  y->set_name("y");
  y->mutable_type()
      ->mutable_sequence_type()
      ->mutable_elem_type()
      ->mutable_tensor_type()
      ->set_elem_type(onnx::TensorProto::FLOAT);
  b.outputUntyped("h", onnx::TensorProto::BOOL);
  auto *p = b.graph().add_output();
  p->set_name("p");
  *p->mutable_type()->mutable_optional_type()->mutable_elem_type() = inner;

  frontend::ImportOptions opts;
  opts.sequenceLengths["s"] = 2;
  opts.inputShapes["s"] = {"3"};
  opts.optionalPresent["o"] = false;
  auto l = lowerModel(b, opts);
  std::vector<std::string> ins;
  for (const ir::Value *v : l->g->inputs)
    ins.push_back(v->name);
  EXPECT_EQ(ins, (std::vector<std::string>{"s.0", "s.1", "t"}));
  EXPECT_EQ(l->prog.outputNames,
            (std::vector<std::string>{"y.0", "y.1", "y.2", "h", "p.has_value", "p"}));

  frontend::ImportOptions missing;
  sym::Context ctx;
  EXPECT_THROW(b.import(ctx, missing), UserError); // no --sequence-length for 's'
}

// Opsets up to 26 import and lower; a newer one is refused naming the node, its op and the
// opsets kiln implements it for.
TEST(Lower, OpsetRangeAndNewerOpsetError) {
  auto model = [](int opset) {
    OnnxBuilder b(opset);
    b.input("x", {2, 3});
    b.node("Relu", {"x"}, {"y"}, "r");
    b.output("y", {2, 3});
    return b;
  };
  OnnxBuilder ok = model(26);
  EXPECT_NO_THROW(lowerModel(ok));
  OnnxBuilder newer = model(27);
  try {
    lowerModel(newer);
    FAIL() << "opset 27 was accepted";
  } catch (const UserError &e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("node 'r' (Relu, opset 27)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("kiln implements Relu as defined in opsets 1 to 26"), std::string::npos)
        << msg;
  }
}

// Strings compare only with Equal; any other binary op on them is a user error, never
// generated code that does not compile.
TEST(Lower, BinaryOpsOnStringsOtherThanEqualAreRefused) {
  OnnxBuilder b(26);
  b.input("a", {2}, onnx::TensorProto::STRING);
  b.input("c", {2}, onnx::TensorProto::STRING);
  b.node("Equal", {"a", "c"}, {"eq"});
  b.node("Add", {"a", "c"}, {"sum"});
  b.output("eq", {2}, onnx::TensorProto::BOOL);
  b.output("sum", {2}, onnx::TensorProto::STRING);
  try {
    lowerModel(b);
    FAIL() << "Add on strings was accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("Add on string tensors is not supported"),
              std::string::npos)
        << e.what();
  }
}

// A RegexFullMatch pattern RE2 rejects is a compile-time error naming the node and RE2's
// reason, not a failure at the first run.
TEST(Lower, RegexFullMatchBadPatternIsACompileError) {
  for (const char *pattern : {"(unclosed", "a{2,1}", "(a)\\1"}) {
    OnnxBuilder b(20);
    b.input("x", {2}, onnx::TensorProto::STRING);
    auto *n = b.node("RegexFullMatch", {"x"}, {"y"}, "re");
    auto *a = n->add_attribute();
    a->set_name("pattern");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(pattern);
    b.output("y", {2}, onnx::TensorProto::BOOL);
    try {
      lowerModel(b);
      FAIL() << "pattern " << pattern << " was accepted";
    } catch (const UserError &e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("node 're' (RegexFullMatch, opset 20)"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("pattern \"") + pattern + "\" is not valid RE2 syntax: "),
                std::string::npos)
          << msg;
    }
  }
}

// RoiAlign reads each RoI's box for every channel and sample: a computed box is realized
// once, not recomputed inside the sampling kernel (Faster R-CNN's decoded proposals made
// that kernel 13x slower). Only the rois kernel may compute the Exp.
TEST(Lower, RoiAlignRealizesComputedRois) {
  OnnxBuilder b(16);
  b.input("x", {1, 8, 10, 10});
  b.input("r", {5, 4});
  b.input("bi", {5}, onnx::TensorProto::INT64);
  b.node("Exp", {"r"}, {"rois"});
  auto *n = b.node("RoiAlign", {"x", "rois", "bi"}, {"y"}, "roi");
  OnnxBuilder::attrInt(n, "output_height", 7);
  OnnxBuilder::attrInt(n, "output_width", 7);
  OnnxBuilder::attrInt(n, "sampling_ratio", 2);
  b.output("y", {5, 8, 7, 7});
  auto l = lowerModel(b);
  std::string text = loop::dump(l->prog);
  size_t exps = 0;
  for (size_t at = text.find("Exp("); at != std::string::npos; at = text.find("Exp(", at + 1))
    ++exps;
  EXPECT_EQ(exps, 1u) << text;
}

// LayerNormalization's Scale and B must broadcast to X one way: more dims than X, or a static
// dim neither 1 nor X's, is refused naming the node and the operand (it used to index before
// the start of the shape, or read past the end of the scale at run time).
TEST(Lower, LayerNormScaleThatDoesNotBroadcastIsRefused) {
  struct Case {
    std::vector<OnnxBuilder::Dim> scale;
    const char *expect;
  };
  for (const Case &k :
       {Case{{1, 2, 3, 4}, "has more dimensions than"}, Case{{2}, "does not broadcast to"},
        Case{{4}, nullptr}, Case{{1, 4}, nullptr}}) {
    OnnxBuilder b(17);
    b.input("x", {3, 4});
    b.input("s", k.scale);
    b.node("LayerNormalization", {"x", "s"}, {"y"}, "ln");
    b.output("y", {3, 4});
    if (!k.expect) {
      EXPECT_NO_THROW(lowerModel(b));
      continue;
    }
    try {
      lowerModel(b);
      FAIL() << "scale of rank " << k.scale.size() << " was accepted";
    } catch (const UserError &e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("node 'ln'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("Scale"), std::string::npos) << msg;
      EXPECT_NE(msg.find(k.expect), std::string::npos) << msg;
    }
  }
}

// QLinearMatMul's a_scale / y_scale are per row of the output (ONNX), b_scale per column: a
// per-row scale of M values is taken, one of any other length refused (it was indexed by the
// column, reading past its end when N > M). Zero points the same, by rows and columns.
TEST(Lower, QLinearMatMulScalesFollowRowsAndColumns) {
  auto model = [](OnnxBuilder::Dim aScale, OnnxBuilder::Dim bScale) {
    OnnxBuilder b(13);
    b.input("a", {2, 4}, onnx::TensorProto::UINT8);
    b.input("sa", {aScale});
    b.input("za", {}, onnx::TensorProto::UINT8);
    b.input("b", {4, 3}, onnx::TensorProto::UINT8);
    b.input("sb", {bScale});
    b.input("zb", {}, onnx::TensorProto::UINT8);
    b.input("sy", {});
    b.input("zy", {}, onnx::TensorProto::UINT8);
    b.node("QLinearMatMul", {"a", "sa", "za", "b", "sb", "zb", "sy", "zy"}, {"y"}, "q");
    b.output("y", {2, 3}, onnx::TensorProto::UINT8);
    return b;
  };
  OnnxBuilder perRow = model(2, 3), scalarLike = model(1, 1);
  EXPECT_NO_THROW(lowerModel(perRow));
  EXPECT_NO_THROW(lowerModel(scalarLike));
  for (auto [sa, sb, what] :
       {std::tuple{3, 3, "the input scale"}, std::tuple{2, 2, "the weight scale"}}) {
    OnnxBuilder bad = model(sa, sb);
    try {
      lowerModel(bad);
      FAIL() << "a_scale of " << sa << ", b_scale of " << sb << " values was accepted";
    } catch (const UserError &e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
}
