// passes::fuseSiblingMatMuls on a BERT-like attention block: the Q/K/V projections become one
// `_KilnMatMulMulti` node on the CPU (not on CUDA, not with KILN_FUSE_SIBLING_MATMUL=0), only
// over constant 2-D weights without other epilogues, and lower to one
// kiln_shim_matmul_multi_v1 call whose outputs are views of one buffer, which the attention
// then reads in place, writing heads where the output projection reads them
// (kiln_shim_sdpa_v3; KILN_STRIDED_ATTENTION=0 keeps the head copies).
#include "codegen/wrapper/extern_call.h"
#include "lower/lowerer.h"
#include "onnx_builder.h"
#include "passes/passes.h"
#include "sched/schedule.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace kiln;
using kiln::test::countOp;
using kiln::test::OnnxBuilder;

namespace {

constexpr int64_t kModel = 32, kHeads = 4, kHead = 8;

std::vector<float> ramp(size_t n, float scale) {
  return kiln::test::ramp(n, 23, -0.1f, scale);
}

/// How the block's projections differ from BERT's: "data" feeds the key weight as a graph
/// input, "batched" makes it a [1, K, N] constant, "relu" puts a Relu after the value
/// projection (an epilogue the fused node does not take).
struct Variant {
  bool keyWeightIsData = false, keyWeightBatched = false, valueRelu = false;
};

/// x [batch, seq, 32] -> Q/K/V (MatMul + Add bias) -> heads -> softmax(Q Kᵀ / sqrt d) V ->
/// output projection, as HF BERT exports it.
void bertBlock(OnnxBuilder &b, Variant v = {}) {
  b.input("x", {"batch", "seq", kModel});
  b.initInt64("heads_shape", {4}, {0, 0, kHeads, kHead});
  b.initInt64("merge_shape", {3}, {0, 0, kModel});
  b.initFloat("scale", {}, {2.828427f});
  const char *names[] = {"query", "key", "value"};
  for (int i = 0; i < 3; ++i) {
    std::string n = names[i], w = n + ".weight";
    if (i == 1 && v.keyWeightIsData)
      b.input(w, {kModel, kModel});
    else if (i == 1 && v.keyWeightBatched)
      b.initFloat(w, {1, kModel, kModel}, ramp(kModel * kModel, 1.f + i));
    else
      b.initFloat(w, {kModel, kModel}, ramp(kModel * kModel, 1.f + i));
    b.initFloat(n + ".bias", {kModel}, ramp(kModel, 0.5f));
    b.node("MatMul", {"x", w}, {n + "_mm"}, n + "_mm");
    std::string projected = i == 2 && v.valueRelu ? "value_pre" : n;
    b.node("Add", {n + "_mm", n + ".bias"}, {projected}, n + "_add");
    if (i == 2 && v.valueRelu) b.node("Relu", {"value_pre"}, {"value"}, "value_relu");
    b.node("Reshape", {n, "heads_shape"}, {n + "_heads"});
  }
  OnnxBuilder::attrInts(b.node("Transpose", {"query_heads"}, {"q"}), "perm", {0, 2, 1, 3});
  OnnxBuilder::attrInts(b.node("Transpose", {"key_heads"}, {"kt"}), "perm", {0, 2, 3, 1});
  OnnxBuilder::attrInts(b.node("Transpose", {"value_heads"}, {"v"}), "perm", {0, 2, 1, 3});
  b.node("MatMul", {"q", "kt"}, {"scores"});
  b.node("Div", {"scores", "scale"}, {"scaled"});
  OnnxBuilder::attrInt(b.node("Softmax", {"scaled"}, {"probs"}), "axis", -1);
  b.node("MatMul", {"probs", "v"}, {"ctx"});
  OnnxBuilder::attrInts(b.node("Transpose", {"ctx"}, {"ctx_t"}), "perm", {0, 2, 1, 3});
  b.node("Reshape", {"ctx_t", "merge_shape"}, {"merged"});
  b.initFloat("out.weight", {kModel, kModel}, ramp(kModel * kModel, 0.7f));
  b.node("MatMul", {"merged", "out.weight"}, {"y"}, "out_mm");
  b.output("y", {"batch", "seq", kModel});
}

std::unique_ptr<ir::Graph> optimized(OnnxBuilder &b, sym::Context &ctx,
                                     const sched::Target &t = sched::Target::cpu()) {
  auto g = b.import(ctx);
  passes::optimizeGraph(*g, nullptr, t);
  return g;
}

const ir::Node *fusedNode(const ir::Graph &g) {
  for (auto &n : g.nodes)
    if (n->op == "_KilnMatMulMulti") return n.get();
  return nullptr;
}

} // namespace

TEST(SiblingMatMul, FusesBertProjectionsOnCpu) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  auto g = optimized(b, ctx);
  ASSERT_EQ(countOp(*g, "_KilnMatMulMulti"), 1) << ir::dump(*g);
  const ir::Node *f = fusedNode(*g);
  ASSERT_EQ(f->outputs.size(), 3u);
  ASSERT_EQ(f->inputs.size(), 7u);
  EXPECT_EQ(f->input(1)->name, "query.weight");
  EXPECT_EQ(f->input(3)->name, "key.weight");
  EXPECT_EQ(f->input(5)->name, "value.weight");
  for (int i : {2, 4, 6})
    EXPECT_TRUE(f->input(i) && f->input(i)->data) << "bias " << i;
  // Only the output projection stays a MatMul (its input is the attention's output).
  EXPECT_EQ(countOp(*g, "MatMul"), 1) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "_KilnSDPA"), 1) << ir::dump(*g);
}

TEST(SiblingMatMul, LowersToOneMultiShimCall) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  auto g = optimized(b, ctx);
  loop::Program prog;
  lower::Lowerer lw(*g, prog);
  lw.lowerGraph();
  sched::scheduleProgram(prog, ctx, sched::Target::cpu());
  const loop::Kernel *multi = nullptr;
  int matmuls = 0;
  for (auto &k : prog.kernels) {
    if (k->kind != loop::KernelKind::Extern) continue;
    if (k->ext.kind == loop::ExternKind::MatMulMulti) multi = k.get();
    if (k->ext.kind == loop::ExternKind::MatMul) ++matmuls;
  }
  ASSERT_NE(multi, nullptr) << loop::dump(prog);
  EXPECT_EQ(matmuls, 1) << "only the output projection";
  EXPECT_EQ(multi->ext.function, "kiln_shim_matmul_multi_v1");
  EXPECT_EQ(multi->ext.paramsType, "kiln_matmul_multi_params_v1");
  ASSERT_EQ(multi->ext.outputs.size(), 1u);
  const ir::Shape &out = multi->ext.outputs[0]->shape;
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[2].isConst(3 * kModel)) << "one [batch, seq, 3 x 32] buffer";
  const loop::ExternParam *count = multi->ext.param("count");
  ASSERT_NE(count, nullptr);
  EXPECT_EQ(count->number, 3);

  codegen::ExternCallNames names{[](sym::Expr e) { return sym::toString(e); },
                                 [](sym::Expr e) { return sym::toString(e); }};
  codegen::ExternCallText text = codegen::printExternCall(multi->ext, names);
  EXPECT_NE(text.setup.find("const float *const bp0[] = {"), std::string::npos) << text.setup;
  EXPECT_NE(text.setup.find("const float *const bp1[] = {"), std::string::npos) << text.setup;
  EXPECT_NE(text.setup.find("p.n[2] = 32;"), std::string::npos) << text.setup;
  EXPECT_NE(text.args.find("bp0, bp1"), std::string::npos) << text.args;
}

TEST(SiblingMatMul, CudaKeepsSeparateMatMuls) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  auto g = optimized(b, ctx, sched::Target::cuda({"sm_90"}));
  EXPECT_EQ(countOp(*g, "_KilnMatMulMulti"), 0) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "MatMul"), 4) << ir::dump(*g);
}

TEST(SiblingMatMul, EnvironmentTurnsItOff) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  ASSERT_EQ(setenv("KILN_FUSE_SIBLING_MATMUL", "0", 1), 0);
  auto g = optimized(b, ctx);
  unsetenv("KILN_FUSE_SIBLING_MATMUL");
  EXPECT_EQ(countOp(*g, "_KilnMatMulMulti"), 0) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "MatMul"), 4);
}

TEST(SiblingMatMul, SkipsWeightsThatAreDataOrBatched) {
  for (Variant v : {Variant{true, false, false}, Variant{false, true, false}}) {
    OnnxBuilder b;
    bertBlock(b, v);
    sym::Context ctx;
    auto g = optimized(b, ctx);
    // Query and value still join; the key projection stays a MatMul of its own.
    ASSERT_EQ(countOp(*g, "_KilnMatMulMulti"), 1) << ir::dump(*g);
    const ir::Node *f = fusedNode(*g);
    EXPECT_EQ(f->outputs.size(), 2u);
    EXPECT_EQ(f->input(1)->name, "query.weight");
    EXPECT_EQ(f->input(3)->name, "value.weight");
    EXPECT_EQ(countOp(*g, "MatMul"), 2) << ir::dump(*g);
  }
}

TEST(SiblingMatMul, SkipsProjectionsWithOtherEpilogues) {
  OnnxBuilder b;
  bertBlock(b, Variant{false, false, true});
  sym::Context ctx;
  auto g = optimized(b, ctx);
  ASSERT_EQ(countOp(*g, "_KilnMatMulMulti"), 1) << ir::dump(*g);
  const ir::Node *f = fusedNode(*g);
  EXPECT_EQ(f->outputs.size(), 2u) << "query and key; value carries a Relu post-op";
  EXPECT_EQ(f->input(3)->name, "key.weight");
}

TEST(SiblingMatMul, LoneMatMulIsLeftAlone) {
  OnnxBuilder b;
  b.input("x", {"batch", kModel});
  b.initFloat("w", {kModel, 16}, ramp(kModel * 16, 1.f));
  b.node("MatMul", {"x", "w"}, {"y"});
  b.output("y", {"batch", 16});
  sym::Context ctx;
  auto g = optimized(b, ctx);
  EXPECT_EQ(countOp(*g, "_KilnMatMulMulti"), 0);
  EXPECT_EQ(countOp(*g, "MatMul"), 1);
}

namespace {

/// The block lowered and scheduled for the CPU: its attention call, and how many kernels
/// read the fused projection's buffer.
struct LoweredAttention {
  const loop::Kernel *attention = nullptr;
  int projectionReaders = 0;
};

LoweredAttention lowerBlock(loop::Program &prog, sym::Context &ctx, OnnxBuilder &b) {
  auto g = optimized(b, ctx);
  lower::Lowerer lw(*g, prog);
  lw.lowerGraph();
  sched::scheduleProgram(prog, ctx, sched::Target::cpu());
  LoweredAttention r;
  const loop::Buffer *projection = nullptr;
  for (auto &k : prog.kernels)
    if (k->kind == loop::KernelKind::Extern && k->ext.kind == loop::ExternKind::MatMulMulti)
      projection = k->ext.outputs.at(0);
  for (auto &k : prog.kernels) {
    if (k->kind == loop::KernelKind::Extern && k->ext.kind == loop::ExternKind::Attention)
      r.attention = k.get();
    for (const loop::Buffer *read : k->reads())
      r.projectionReaders += read == projection;
  }
  return r;
}

} // namespace

TEST(SiblingMatMul, AttentionReadsTheFusedProjectionInPlace) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  loop::Program prog;
  LoweredAttention l = lowerBlock(prog, ctx, b);
  ASSERT_NE(l.attention, nullptr) << loop::dump(prog);
  EXPECT_EQ(l.attention->ext.function, "kiln_shim_sdpa_v3");
  EXPECT_EQ(l.projectionReaders, 1) << "no head copies between the GEMM and the attention\n"
                                    << loop::dump(prog);
  ASSERT_EQ(l.attention->ext.args.size(), 10u);
  const std::vector<sym::Expr> &layout = l.attention->ext.args[9].dims;
  ASSERT_EQ(layout.size(), 16u);
  const sym::Expr seq = *ctx.findSymbol("seq");
  // Q, K, V: columns 0, 32 and 64 of [batch, seq, 96]; a head is 8 columns on; rows are 96.
  for (int t = 0; t < 3; ++t) {
    EXPECT_TRUE(layout[4 * t].isConst(t * kModel)) << sym::toString(layout[4 * t]);
    EXPECT_TRUE(sym::provablyEqual(layout[4 * t + 1], seq * (3 * kModel)));
    EXPECT_TRUE(layout[4 * t + 2].isConst(kHead));
    EXPECT_TRUE(layout[4 * t + 3].isConst(3 * kModel));
  }
  // out: heads side by side, [batch, seq, heads, 8], so the merge is a reshape...
  EXPECT_TRUE(layout[12].isConst(0));
  EXPECT_TRUE(sym::provablyEqual(layout[13], seq * (kHeads * kHead)));
  EXPECT_TRUE(layout[14].isConst(kHead));
  EXPECT_TRUE(layout[15].isConst(kHeads * kHead));
  // ...and the output projection reads the attention's buffer itself.
  const loop::Buffer *attended = l.attention->ext.outputs.at(0);
  int readers = 0;
  for (auto &k : prog.kernels)
    for (const loop::Buffer *read : k->reads())
      readers += read == attended;
  EXPECT_EQ(readers, 1) << loop::dump(prog);
  for (auto &k : prog.kernels)
    if (k->kind == loop::KernelKind::Extern && k->ext.kind == loop::ExternKind::MatMul)
      EXPECT_EQ(k->ext.inputs.at(0), attended) << "no merge copy before the output projection";
}

TEST(SiblingMatMul, StridedAttentionOffKeepsHeadCopies) {
  OnnxBuilder b;
  bertBlock(b);
  sym::Context ctx;
  loop::Program prog;
  ASSERT_EQ(setenv("KILN_STRIDED_ATTENTION", "0", 1), 0);
  LoweredAttention l = lowerBlock(prog, ctx, b);
  unsetenv("KILN_STRIDED_ATTENTION");
  ASSERT_NE(l.attention, nullptr) << loop::dump(prog);
  EXPECT_EQ(l.attention->ext.function, "kiln_shim_sdpa_v2");
  EXPECT_EQ(l.attention->ext.args.size(), 9u);
  EXPECT_EQ(l.projectionReaders, 3) << "one copy per head split (Q, K, V)";
  EXPECT_EQ(l.attention->ext.outputs.at(0)->shape.size(), 4u);
}
