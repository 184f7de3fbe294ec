// passes::fuseConvChains on MobileNetV2-style inverted-residual blocks: which chains become
// one _KilnConvChain node (inputs, geometry, post-ops, residual), which stay convs, and on
// which targets the fusion runs.
#include "onnx_builder.h"
#include "passes/passes.h"

#include "kiln/shim.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace kiln;
using kiln::test::countOp;
using kiln::test::OnnxBuilder;

namespace {

std::vector<float> ramp(size_t n) {
  return kiln::test::ramp(n, 13, -0.06f);
}

struct Block {
  int64_t c = 8, e = 24, h = 10, stride = 1;
  int64_t dwKernel = 3;
  bool residual = true;
  bool expandHasSecondUser = false;
};

/// x [1, c, h, h] -> Conv1x1 (c -> e) -> Clip(0, 6) -> depthwise Conv -> Clip(0, 6) ->
/// Conv1x1 (e -> c) [-> Add x] -> y.
OnnxBuilder block(const Block &k) {
  OnnxBuilder b;
  const int64_t oh = (k.h + 2 * (k.dwKernel / 2) - k.dwKernel) / k.stride + 1;
  b.input("x", {1, k.c, k.h, k.h});
  b.initFloat("we", {k.e, k.c, 1, 1}, ramp(k.e * k.c));
  b.initFloat("be", {k.e}, ramp(k.e));
  b.initFloat("wd", {k.e, 1, k.dwKernel, k.dwKernel}, ramp(k.e * k.dwKernel * k.dwKernel));
  b.initFloat("bd", {k.e}, ramp(k.e));
  b.initFloat("wp", {k.c, k.e, 1, 1}, ramp(k.c * k.e));
  b.initFloat("bp", {k.c}, ramp(k.c));
  b.initFloat("lo", {}, {0.f});
  b.initFloat("hi", {}, {6.f});
  b.node("Conv", {"x", "we", "be"}, {"e"}, "expand");
  b.node("Clip", {"e", "lo", "hi"}, {"e6"}, "expand_clip");
  auto *dw = b.node("Conv", {"e6", "wd", "bd"}, {"d"}, "dw");
  const int64_t p = k.dwKernel / 2;
  OnnxBuilder::attrInt(dw, "group", k.e);
  OnnxBuilder::attrInts(dw, "pads", {p, p, p, p});
  OnnxBuilder::attrInts(dw, "strides", {k.stride, k.stride});
  b.node("Clip", {"d", "lo", "hi"}, {"d6"}, "dw_clip");
  b.node("Conv", {"d6", "wp", "bp"}, {k.residual ? "pr" : "y"}, "project");
  if (k.residual) b.node("Add", {"pr", "x"}, {"y"}, "residual");
  b.output("y", {1, k.c, oh, oh});
  if (k.expandHasSecondUser) b.output("e6", {1, k.e, k.h, k.h});
  return b;
}

std::unique_ptr<ir::Graph> fused(OnnxBuilder &b, sym::Context &ctx, const sched::Target &t) {
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseExternEpilogues(*g, t);
  if (passes::convChainFusionWanted(t)) passes::fuseConvChains(*g);
  passes::eliminateDeadCode(*g);
  ir::verify(*g);
  return g;
}

const ir::Node *chainNode(const ir::Graph &g) {
  for (auto &n : g.nodes)
    if (!n->dead && n->op == "_KilnConvChain") return n.get();
  return nullptr;
}

} // namespace

TEST(ConvChainFusion, ResidualBlockBecomesOneNode) {
  OnnxBuilder b = block({});
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  ASSERT_EQ(kiln::test::liveNodes(*g), 1) << ir::dump(*g);
  const ir::Node *c = chainNode(*g);
  ASSERT_TRUE(c) << ir::dump(*g);
  ASSERT_EQ(c->inputs.size(), 8u);
  EXPECT_EQ(c->input(0), g->inputs[0]);
  EXPECT_EQ(c->input(7), g->inputs[0]); // the residual
  for (int i = 1; i <= 6; ++i)
    EXPECT_TRUE(c->input(i) && c->input(i)->data) << "weight/bias " << i;
  EXPECT_EQ(c->outputs[0], g->outputs[0]);
  EXPECT_EQ(c->attrInts("_kiln_posts", {}),
            (std::vector<int64_t>{KILN_POST_CLIP, KILN_POST_CLIP, KILN_POST_NONE}));
  EXPECT_EQ(c->attrFloats("_kiln_clips"), (std::vector<float>{0.f, 6.f, 0.f, 6.f, 0.f, 0.f}));
  EXPECT_EQ(c->attrInt("group", 0), 24);
  EXPECT_EQ(c->attrInts("pads", {}), (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST(ConvChainFusion, StridedBlockWithoutResidual) {
  Block k;
  k.stride = 2;
  k.residual = false;
  OnnxBuilder b = block(k);
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  const ir::Node *c = chainNode(*g);
  ASSERT_TRUE(c) << ir::dump(*g);
  EXPECT_EQ(c->input(7), nullptr);
  EXPECT_EQ(c->attrInts("strides", {}), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(countOp(*g, "Conv"), 0);
}

// MobileNetV2's first block has no expansion: depthwise then project, as a two-conv chain.
TEST(ConvChainFusion, BlockWithoutExpansion) {
  OnnxBuilder b;
  b.input("x", {1, 16, 9, 9});
  b.initFloat("wd", {16, 1, 3, 3}, ramp(16 * 9));
  b.initFloat("wp", {8, 16, 1, 1}, ramp(8 * 16));
  b.initFloat("bp", {8}, ramp(8));
  auto *dw = b.node("Conv", {"x", "wd"}, {"d"}, "dw");
  OnnxBuilder::attrInt(dw, "group", 16);
  OnnxBuilder::attrInts(dw, "pads", {1, 1, 1, 1});
  b.node("Relu", {"d"}, {"dr"}, "dw_relu");
  b.node("Conv", {"dr", "wp", "bp"}, {"y"}, "project");
  b.output("y", {1, 8, 9, 9});
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  ASSERT_EQ(kiln::test::liveNodes(*g), 1) << ir::dump(*g);
  const ir::Node *c = chainNode(*g);
  ASSERT_TRUE(c) << ir::dump(*g);
  ASSERT_EQ(c->inputs.size(), 8u);
  EXPECT_EQ(c->input(0), g->inputs[0]);
  EXPECT_EQ(c->input(1), nullptr); // no expansion
  EXPECT_EQ(c->input(2), nullptr);
  EXPECT_EQ(c->input(4), nullptr); // the depthwise conv had no bias
  EXPECT_TRUE(c->input(3) && c->input(5) && c->input(6));
  EXPECT_EQ(c->attrInts("_kiln_posts", {}),
            (std::vector<int64_t>{KILN_POST_NONE, KILN_POST_RELU, KILN_POST_NONE}));
}

TEST(ConvChainFusion, FiveByFiveDepthwiseStaysConvs) {
  Block k;
  k.dwKernel = 5; // the shim's depthwise kernel is 3x3 only
  OnnxBuilder b = block(k);
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  EXPECT_EQ(chainNode(*g), nullptr) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "Conv"), 3) << ir::dump(*g);
}

// An expanded map that something else reads is needed whole: the expansion stays a conv, the
// depthwise and project convs still chain.
TEST(ConvChainFusion, SharedExpansionStaysAConv) {
  Block k;
  k.expandHasSecondUser = true;
  OnnxBuilder b = block(k);
  sym::Context ctx;
  auto g = fused(b, ctx, sched::Target::cpu());
  const ir::Node *c = chainNode(*g);
  ASSERT_TRUE(c) << ir::dump(*g);
  EXPECT_EQ(c->input(1), nullptr);
  EXPECT_EQ(countOp(*g, "Conv"), 1) << ir::dump(*g);
}

TEST(ConvChainFusion, OnlyOnChannelsLastCpuAndNotWhenSwitchedOff) {
  EXPECT_TRUE(passes::convChainFusionWanted(sched::Target::cpu()));
  EXPECT_FALSE(passes::convChainFusionWanted(sched::Target::cuda({"sm_90"})));
  sched::Target planar = sched::Target::cpu();
  planar.convChannelsLast = false;
  EXPECT_FALSE(passes::convChainFusionWanted(planar));
  ::setenv("KILN_FUSE_CONV_CHAIN", "0", 1);
  EXPECT_FALSE(passes::convChainFusionWanted(sched::Target::cpu()));
  ::unsetenv("KILN_FUSE_CONV_CHAIN");
}
