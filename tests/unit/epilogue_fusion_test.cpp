// passes::fuseExternEpilogues on transformer epilogues: GELU (the op and the formulas torch
// and GPT-2 exports write out) and residual Adds after MatMul/Gemm, per target.
#include "onnx_builder.h"
#include "passes/passes.h"

#include "kiln/shim.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace kiln;
using kiln::test::countOp;
using kiln::test::OnnxBuilder;

namespace {

std::vector<float> ramp(size_t n) {
  return kiln::test::ramp(n, 17, -0.05f);
}

/// x [batch, 8] @ w [8, 4] + bias -> "h" (the GELU's input); the caller adds the rest.
void matmulBias(OnnxBuilder &b) {
  b.input("x", {"batch", 8});
  b.initFloat("w", {8, 4}, ramp(32));
  b.initFloat("bias", {4}, ramp(4));
  b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
  b.node("Add", {"mm", "bias"}, {"h"}, "bias_add");
}

void scalar(OnnxBuilder &b, const std::string &name, float v) {
  b.initFloat(name, {}, {v});
}

/// torch 1.13's nn.GELU() export: Div(h, sqrt 2) -> Erf -> Add 1 -> Mul h -> Mul 0.5.
void erfGelu(OnnxBuilder &b, float sqrt2 = 1.4142135381698608f) {
  scalar(b, "sqrt2", sqrt2);
  scalar(b, "one", 1.f);
  scalar(b, "half", 0.5f);
  b.node("Div", {"h", "sqrt2"}, {"d"});
  b.node("Erf", {"d"}, {"e"});
  b.node("Add", {"e", "one"}, {"p"});
  b.node("Mul", {"h", "p"}, {"q"});
  b.node("Mul", {"q", "half"}, {"y"}, "gelu_out");
}

/// GPT-2's gelu_new: 0.5*h * (1 + tanh(sqrt(2/pi) * (h + 0.044715 * h^3))), cube as Pow or
/// as h*h*h.
void tanhGelu(OnnxBuilder &b, bool pow) {
  scalar(b, "half", 0.5f);
  scalar(b, "one", 1.f);
  scalar(b, "kappa", 0.044715f);
  scalar(b, "beta", 0.7978845608028654f);
  if (pow) {
    scalar(b, "three", 3.f);
    b.node("Pow", {"h", "three"}, {"cube"});
  } else {
    b.node("Mul", {"h", "h"}, {"sq"});
    b.node("Mul", {"sq", "h"}, {"cube"});
  }
  b.node("Mul", {"cube", "kappa"}, {"kc"});
  b.node("Add", {"h", "kc"}, {"inner"});
  b.node("Mul", {"inner", "beta"}, {"arg"});
  b.node("Tanh", {"arg"}, {"t"});
  b.node("Add", {"t", "one"}, {"p"});
  b.node("Mul", {"half", "h"}, {"hh"});
  b.node("Mul", {"hh", "p"}, {"y"}, "gelu_out");
}

std::unique_ptr<ir::Graph> fused(OnnxBuilder &b, sym::Context &ctx, const sched::Target &t) {
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseExternEpilogues(*g, t);
  passes::eliminateDeadCode(*g);
  ir::verify(*g);
  return g;
}

const ir::Node *only(const ir::Graph &g, const std::string &op) {
  const ir::Node *found = nullptr;
  for (auto &n : g.nodes)
    if (!n->dead && n->op == op) {
      if (found) return nullptr;
      found = n.get();
    }
  return found;
}

sched::Target cuda() {
  return sched::Target::cuda({"sm_90"});
}

} // namespace

TEST(EpilogueFusion, TorchErfGeluFusesOnCpuOnly) {
  OnnxBuilder b;
  matmulBias(b);
  erfGelu(b);
  b.output("y", {"batch", 4});
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  ASSERT_EQ(kiln::test::liveNodes(*g), 1) << ir::dump(*g);
  const ir::Node *mm = only(*g, "MatMul");
  ASSERT_TRUE(mm) << ir::dump(*g);
  EXPECT_EQ(mm->attrInt("_kiln_post", 0), KILN_POST_GELU_ERF);
  EXPECT_EQ(mm->inputs.size(), 3u); // x, w, bias
  EXPECT_EQ(mm->outputs[0], g->outputs[0]);

  // cuBLASLt's GELU is the tanh form: on CUDA the erf GELU stays a generated kernel.
  sym::Context ctx2;
  auto gc = fused(b, ctx2, cuda());
  const ir::Node *mc = only(*gc, "MatMul");
  ASSERT_TRUE(mc) << ir::dump(*gc);
  EXPECT_EQ(mc->attrInt("_kiln_post", 0), 0);
  EXPECT_EQ(countOp(*gc, "Erf"), 1) << ir::dump(*gc);
}

TEST(EpilogueFusion, Gpt2TanhGeluFusesOnCpuAndCuda) {
  for (bool pow : {true, false}) {
    for (const sched::Target &t : {sched::Target::cpu(), cuda()}) {
      OnnxBuilder b;
      matmulBias(b);
      tanhGelu(b, pow);
      b.output("y", {"batch", 4});
      sym::Context ctx;
      auto g = fused(b, ctx, t);
      ASSERT_EQ(kiln::test::liveNodes(*g), 1) << t.deviceName() << pow << ir::dump(*g);
      EXPECT_EQ(g->nodes.front()->attrInt("_kiln_post", 0), KILN_POST_GELU_TANH);
    }
  }
}

TEST(EpilogueFusion, GeluOpBothApproximations) {
  for (const char *approx : {"none", "tanh"}) {
    OnnxBuilder b(20);
    matmulBias(b);
    auto *n = b.node("Gelu", {"h"}, {"y"}, "gelu");
    auto *a = n->add_attribute();
    a->set_name("approximate");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(approx);
    b.output("y", {"batch", 4});
    sym::Context ctx;
    auto g = fused(b, ctx, sched::Target::cpu());
    ASSERT_EQ(kiln::test::liveNodes(*g), 1) << approx << ir::dump(*g);
    const ir::Node &mm = *g->nodes.front();
    EXPECT_EQ(mm.attrInt("_kiln_post", 0),
              std::string(approx) == "tanh" ? KILN_POST_GELU_TANH : KILN_POST_GELU_ERF);
    EXPECT_FALSE(mm.hasAttr("approximate"));
    sym::Context ctx2;
    auto gc = fused(b, ctx2, cuda());
    EXPECT_EQ(countOp(*gc, "Gelu"), std::string(approx) == "tanh" ? 0 : 1) << ir::dump(*gc);
  }
}

TEST(EpilogueFusion, GeluNotFusedWhenAnIntermediateIsUsedElsewhere) {
  OnnxBuilder b;
  matmulBias(b);
  erfGelu(b);
  b.output("y", {"batch", 4});
  b.output("e", {"batch", 4}); // the Erf's output is also a model output
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  EXPECT_EQ(countOp(*g, "Erf"), 1) << ir::dump(*g);
  EXPECT_EQ(only(*g, "MatMul")->attrInt("_kiln_post", 0), 0);
}

TEST(EpilogueFusion, GeluNotFusedWhenTheMatmulOutputHasAnotherUser) {
  OnnxBuilder b;
  matmulBias(b);
  erfGelu(b);
  b.node("Relu", {"h"}, {"r"}, "other_user");
  b.output("y", {"batch", 4});
  b.output("r", {"batch", 4});
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  EXPECT_EQ(countOp(*g, "Erf"), 1) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "Relu"), 1) << ir::dump(*g);
}

TEST(EpilogueFusion, GeluNotFusedWithOtherConstants) {
  OnnxBuilder b;
  matmulBias(b);
  erfGelu(b, 1.5f); // x * Phi(x * sqrt2 / 1.5) is not GELU
  b.output("y", {"batch", 4});
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  EXPECT_EQ(countOp(*g, "Erf"), 1) << ir::dump(*g);
}

TEST(EpilogueFusion, NoFusionOnFloat64) {
  OnnxBuilder b;
  b.input("x", {2, 3}, onnx::TensorProto::DOUBLE);
  b.input("w", {3, 2}, onnx::TensorProto::DOUBLE);
  b.input("r", {2, 2}, onnx::TensorProto::DOUBLE);
  b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
  b.node("Add", {"mm", "r"}, {"y"}, "residual");
  b.output("y", {2, 2}, onnx::TensorProto::DOUBLE);
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  EXPECT_EQ(countOp(*g, "Add"), 1) << ir::dump(*g);
}

TEST(EpilogueFusion, ResidualFusesAndMayHaveOtherUsers) {
  for (const sched::Target &t : {sched::Target::cpu(), cuda()}) {
    OnnxBuilder b;
    b.input("x", {"batch", 16, 8});
    b.initFloat("w", {8, 8}, ramp(64));
    b.initFloat("bias", {8}, ramp(8));
    b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
    b.node("Add", {"bias", "mm"}, {"h"}, "bias_add");
    b.node("Add", {"x", "h"}, {"y"}, "residual"); // the residual is the matmul's own input
    b.output("y", {"batch", 16, 8});
    sym::Context ctx;
    auto g = fused(b, ctx, t);
    ASSERT_EQ(kiln::test::liveNodes(*g), 1) << t.deviceName() << ir::dump(*g);
    const ir::Node &mm = *g->nodes.front();
    EXPECT_EQ(mm.op, "MatMul");
    ASSERT_EQ(mm.inputs.size(), 4u);
    EXPECT_EQ(mm.input(3), g->inputs[0]);
    EXPECT_EQ(mm.outputs[0], g->outputs[0]);
  }
}

TEST(EpilogueFusion, GemmResidualThenTanhGelu) {
  OnnxBuilder b;
  b.input("x", {4, 8});
  b.input("r", {4, 6});
  b.initFloat("w", {6, 8}, ramp(48));
  b.initFloat("c", {6}, ramp(6));
  auto *gemm = b.node("Gemm", {"x", "w", "c"}, {"g"}, "gemm");
  OnnxBuilder::attrInt(gemm, "transB", 1);
  b.node("Add", {"g", "r"}, {"h"}, "residual");
  tanhGelu(b, true);
  b.output("y", {4, 6});
  sym::Context ctx;
  auto g = fused(b, ctx, cuda());
  ASSERT_EQ(kiln::test::liveNodes(*g), 1) << ir::dump(*g);
  const ir::Node &mm = *g->nodes.front();
  EXPECT_EQ(mm.op, "Gemm");
  EXPECT_EQ(mm.attrInt("transB", 0), 1);
  EXPECT_EQ(mm.attrInt("_kiln_post", 0), KILN_POST_GELU_TANH);
  ASSERT_EQ(mm.inputs.size(), 4u);
  EXPECT_EQ(mm.input(3), g->inputs[1]);
}

TEST(EpilogueFusion, ResidualNotFusedWhenItBroadcastsOrGemmHasAFullAddend) {
  {
    OnnxBuilder b; // r [1, 6] broadcasts over the rows: not a residual
    b.input("x", {4, 8});
    b.input("r", {1, 6});
    b.initFloat("w", {8, 6}, ramp(48));
    b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
    b.node("Add", {"mm", "r"}, {"y"}, "add");
    b.output("y", {4, 6});
    sym::Context ctx;
    auto g = fused(b, ctx, sched::Target::cpu());
    EXPECT_EQ(countOp(*g, "Add"), 1) << ir::dump(*g);
  }
  {
    OnnxBuilder b; // Gemm's C is a full [4, 6] addend already
    b.input("x", {4, 8});
    b.input("c", {4, 6});
    b.input("r", {4, 6});
    b.initFloat("w", {8, 6}, ramp(48));
    b.node("Gemm", {"x", "w", "c"}, {"g"}, "gemm");
    b.node("Add", {"g", "r"}, {"y"}, "add");
    b.output("y", {4, 6});
    sym::Context ctx;
    auto g = fused(b, ctx, sched::Target::cpu());
    EXPECT_EQ(countOp(*g, "Add"), 1) << ir::dump(*g);
  }
  {
    sched::Target t = sched::Target::cpu(); // a target that does not want the residual
    t.fuseMatMulResidual = false;
    OnnxBuilder b;
    b.input("x", {4, 8});
    b.input("r", {4, 6});
    b.initFloat("w", {8, 6}, ramp(48));
    b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
    b.node("Add", {"mm", "r"}, {"y"}, "add");
    b.output("y", {4, 6});
    sym::Context ctx;
    auto g = fused(b, ctx, t);
    EXPECT_EQ(countOp(*g, "Add"), 1) << ir::dump(*g);
  }
}
