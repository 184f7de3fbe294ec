// Attention fusion (passes::fuseAttention): q @ kᵀ → softmax → @ v into _KilnSDPA, with
// additive and causal masks, the device's head-dim limit, and the patterns left unfused.
#include "onnx_builder.h"
#include "passes/passes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

using namespace kiln;
using kiln::test::countOp;
using kiln::test::OnnxBuilder;

TEST(Passes, FuseAttentionPattern) {
  // q @ kᵀ * 0.25 → softmax(last) → @ v becomes one _KilnSDPA node with scale 0.25.
  OnnxBuilder b;
  b.input("q", {2, 4, 8, 16});
  b.input("kt", {2, 4, 16, 8});
  b.input("v", {2, 4, 8, 16});
  b.initFloat("s", {}, {0.25f});
  b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
  b.node("Mul", {"scores", "s"}, {"scaled"}, "scale");
  auto *sm = b.node("Softmax", {"scaled"}, {"p"}, "softmax");
  OnnxBuilder::attrInt(sm, "axis", -1);
  b.node("MatMul", {"p", "v"}, {"y"}, "pv");
  b.output("y", {2, 4, 8, 16});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseAttention(*g);
  passes::eliminateDeadCode(*g);
  ASSERT_EQ(countOp(*g, "_KilnSDPA"), 1) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "Softmax"), 0);
  EXPECT_EQ(countOp(*g, "MatMul"), 0);
  for (auto &n : g->nodes)
    if (n->op == "_KilnSDPA") {
      EXPECT_FLOAT_EQ(n->attrFloat("scale", 0), 0.25f);
    }
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, AttentionFusionRespectsTheDevicesHeadDimLimit) {
  OnnxBuilder b;
  b.input("q", {1, 2, 4, 16});
  b.input("kt", {1, 2, 16, 4});
  b.input("v", {1, 2, 4, 16});
  b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
  auto *sm = b.node("Softmax", {"scores"}, {"p"}, "softmax");
  OnnxBuilder::attrInt(sm, "axis", -1);
  b.node("MatMul", {"p", "v"}, {"y"}, "pv");
  b.output("y", {1, 2, 4, 16});
  for (int limit : {8, 16}) {
    sym::Context ctx;
    auto g = b.import(ctx);
    passes::inferAndFold(*g);
    passes::fuseAttention(*g, limit); // head dim 16: above 8 stays unfused, 16 fuses
    EXPECT_EQ(countOp(*g, "_KilnSDPA"), limit >= 16 ? 1 : 0) << "limit " << limit;
  }
}

TEST(Passes, FuseBatchedMatMulAttention) {
  // nn.MultiheadAttention exports [B*H, S, D] batched matmuls with the scale on q.
  OnnxBuilder b;
  b.input("q", {6, 5, 8});
  b.input("k", {6, 7, 8});
  b.input("v", {6, 7, 4});
  OnnxBuilder::attrInts(b.node("Transpose", {"k"}, {"kt"}, "kt"), "perm", {0, 2, 1});
  b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
  auto *sm = b.node("Softmax", {"scores"}, {"p"}, "softmax");
  OnnxBuilder::attrInt(sm, "axis", -1);
  b.node("MatMul", {"p", "v"}, {"y"}, "pv");
  b.output("y", {6, 5, 4});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseAttention(*g);
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "_KilnSDPA"), 1) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "Softmax"), 0);
}

namespace {

/// q @ kᵀ / 4 → <masking node(s) built by `mask`> → softmax → @ v, batch 2, 4 heads, seq 8.
std::unique_ptr<ir::Graph> maskedAttention(sym::Context &ctx,
                                           const std::function<void(OnnxBuilder &)> &mask) {
  OnnxBuilder b;
  b.input("q", {2, 4, 8, 16});
  b.input("kt", {2, 4, 16, 8});
  b.input("v", {2, 4, 8, 16});
  b.initFloat("d", {}, {4.0f});
  b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
  b.node("Div", {"scores", "d"}, {"scaled"}, "scale");
  mask(b); // scaled → masked
  auto *sm = b.node("Softmax", {"masked"}, {"p"}, "softmax");
  OnnxBuilder::attrInt(sm, "axis", -1);
  b.node("MatMul", {"p", "v"}, {"y"}, "pv");
  b.output("y", {2, 4, 8, 16});
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseAttention(*g);
  passes::eliminateDeadCode(*g);
  return g;
}

const ir::Node *sdpaNode(const ir::Graph &g) {
  for (auto &n : g.nodes)
    if (n->op == "_KilnSDPA") return n.get();
  return nullptr;
}

} // namespace

TEST(Passes, FuseAttentionWithAdditiveMask) {
  // HF BERT: scores / sqrt(d) + mask[B, 1, 1, S] (broadcast over heads and query rows).
  sym::Context ctx;
  auto g = maskedAttention(ctx, [](OnnxBuilder &b) {
    b.input("mask", {2, 1, 1, 8});
    b.node("Add", {"scaled", "mask"}, {"masked"}, "add_mask");
  });
  const ir::Node *n = sdpaNode(*g);
  ASSERT_NE(n, nullptr) << ir::dump(*g);
  ASSERT_EQ(n->inputs.size(), 4u);
  EXPECT_EQ(n->inputs[3]->name, "mask");
  EXPECT_EQ(n->attrInt("mask_kind", 0), 1);
  EXPECT_FLOAT_EQ(n->attrFloat("scale", 0), 0.25f);
  EXPECT_EQ(countOp(*g, "Add") + countOp(*g, "Softmax") + countOp(*g, "MatMul"), 0);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, FuseAttentionWithCausalWhere) {
  // GPT-2: Where(causal[1, 1, S, S], scores, finfo.min).
  sym::Context ctx;
  auto g = maskedAttention(ctx, [](OnnxBuilder &b) {
    b.input("causal", {1, 1, 8, 8}, onnx::TensorProto::BOOL);
    b.initFloat("fill", {}, {-3.4028234663852886e38f});
    b.node("Where", {"causal", "scaled", "fill"}, {"masked"}, "causal_mask");
  });
  const ir::Node *n = sdpaNode(*g);
  ASSERT_NE(n, nullptr) << ir::dump(*g);
  ASSERT_EQ(n->inputs.size(), 4u);
  EXPECT_EQ(n->inputs[3]->name, "causal");
  EXPECT_EQ(n->attrInt("mask_kind", 0), 2);
  EXPECT_FLOAT_EQ(n->attrFloat("mask_fill", 0), -3.4028234663852886e38f);
  EXPECT_EQ(countOp(*g, "Where"), 0);
}

TEST(Passes, NoAttentionFusionForUnsupportedMasks) {
  {
    // -inf fill: a fully masked row would be NaN in ONNX but zeros in the shim.
    sym::Context ctx;
    auto g = maskedAttention(ctx, [](OnnxBuilder &b) {
      b.input("causal", {1, 1, 8, 8}, onnx::TensorProto::BOOL);
      b.initFloat("fill", {}, {-INFINITY});
      b.node("Where", {"causal", "scaled", "fill"}, {"masked"}, "causal_mask");
    });
    EXPECT_EQ(sdpaNode(*g), nullptr) << ir::dump(*g);
  }
  {
    // A mask that is the scores' operand of a second Add user is not consumed.
    sym::Context ctx;
    auto g = maskedAttention(ctx, [](OnnxBuilder &b) {
      b.input("mask", {2, 1, 1, 8});
      b.node("Add", {"scaled", "mask"}, {"masked"}, "add_mask");
      b.output("scaled", {2, 4, 8, 8}); // scores used elsewhere
    });
    EXPECT_EQ(sdpaNode(*g), nullptr) << ir::dump(*g);
  }
}

TEST(Passes, AttentionMaskDimsMayBeSymbolsOfTheirOwn) {
  // GPT-2 compiled for more positions than its causal buffer: the sliced mask is
  // [1, 1, min(1024, s), min(1024, s)], not provably [.., s, s], yet a run-time broadcast
  // like any other. A constant mask dim against a symbolic score dim is not fused.
  for (bool constantDim : {false, true}) {
    OnnxBuilder b;
    b.input("q", {"b", 4, "s", 16});
    b.input("kt", {"b", 4, 16, "s"});
    b.input("v", {"b", 4, "s", 16});
    if (constantDim)
      b.input("mask", {1, 1, 8, "n"});
    else
      b.input("mask", {1, 1, "m", "n"});
    b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
    b.node("Add", {"scores", "mask"}, {"masked"}, "add_mask");
    auto *sm = b.node("Softmax", {"masked"}, {"p"}, "softmax");
    OnnxBuilder::attrInt(sm, "axis", -1);
    b.node("MatMul", {"p", "v"}, {"y"}, "pv");
    b.output("y", {"b", 4, "s", 16});
    sym::Context ctx;
    auto g = b.import(ctx);
    passes::inferAndFold(*g);
    passes::fuseAttention(*g);
    EXPECT_EQ(countOp(*g, "_KilnSDPA"), constantDim ? 0 : 1) << ir::dump(*g);
  }
}

TEST(Passes, NoAttentionFusionWhenScoresAreReused) {
  OnnxBuilder b;
  b.input("q", {1, 2, 4, 8});
  b.input("kt", {1, 2, 8, 4});
  b.input("v", {1, 2, 4, 8});
  b.node("MatMul", {"q", "kt"}, {"scores"}, "qk");
  auto *sm = b.node("Softmax", {"scores"}, {"p"}, "softmax");
  OnnxBuilder::attrInt(sm, "axis", -1);
  b.node("MatMul", {"p", "v"}, {"y"}, "pv");
  b.output("y", {1, 2, 4, 8});
  b.output("scores", {1, 2, 4, 4}); // a second user of the scores: keep the graph as is
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseAttention(*g);
  EXPECT_EQ(countOp(*g, "_KilnSDPA"), 0) << ir::dump(*g);
}
