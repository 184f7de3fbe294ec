// Graph IR (dump, verify), import and graph passes (folding, DCE, CSE, BatchNorm folding,
// epilogue fusion) on small in-memory ONNX models. Attention fusion: attention_fusion_test.cpp.
#include "onnx_builder.h"
#include "passes/passes.h"
#include "support/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace kiln;
using kiln::test::countOp;
using kiln::test::OnnxBuilder;

namespace {

std::vector<float> randomVec(size_t n, unsigned seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(rng);
  return v;
}

ir::Attribute intAttr(int64_t v) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::Int;
  a.i = v;
  return a;
}

} // namespace

TEST(IR, DumpOfSmallGraph) {
  sym::Context ctx;
  ir::Graph g(ctx);
  ir::Value *x = g.newValue("x");
  x->shape = {ctx.constant(2), ctx.constant(3)};
  x->shapeKnown = true;
  x->isGraphInput = true;
  g.inputs.push_back(x);
  ir::Node *relu = g.newNode("Relu", "r0");
  ir::Value *r = g.newValue("r");
  relu->inputs = {x};
  relu->outputs = {r};
  r->shape = x->shape;
  r->shapeKnown = true;
  g.connect(relu);
  ir::Node *sm = g.newNode("Softmax", "s0");
  sm->attrs["axis"] = intAttr(1);
  ir::Value *y = g.newValue("y");
  sm->inputs = {r};
  sm->outputs = {y};
  y->shape = x->shape;
  y->shapeKnown = true;
  g.connect(sm);
  y->isGraphOutput = true;
  g.outputs.push_back(y);

  std::string d = ir::dump(g);
  EXPECT_NE(d.find("graph("), std::string::npos) << d;
  EXPECT_NE(d.find("%x"), std::string::npos) << d;
  EXPECT_NE(d.find("= Relu(%x)"), std::string::npos) << d;
  EXPECT_NE(d.find("= Softmax(%r) {axis=1}"), std::string::npos) << d;
  EXPECT_NE(d.find("return %y"), std::string::npos) << d;
  // Relu precedes Softmax (topological order is kept).
  EXPECT_LT(d.find("Relu"), d.find("Softmax")) << d;
  EXPECT_NO_THROW(ir::verify(g));
  EXPECT_EQ(r->producer, relu);
  ASSERT_EQ(x->users.size(), 1u);
  EXPECT_EQ(x->users[0], relu);
}

TEST(IR, VerifyCatchesUseBeforeDef) {
  sym::Context ctx;
  ir::Graph g(ctx);
  ir::Value *x = g.newValue("x");
  x->shape = {ctx.constant(4)};
  x->shapeKnown = true;
  g.inputs.push_back(x);
  ir::Value *a = g.newValue("a"), *b = g.newValue("b");
  for (ir::Value *v : {a, b}) {
    v->shape = x->shape;
    v->shapeKnown = true;
  }
  // n1 reads b, which n2 (later in the order) produces.
  ir::Node *n1 = g.newNode("Relu", "first");
  n1->inputs = {b};
  n1->outputs = {a};
  g.connect(n1);
  ir::Node *n2 = g.newNode("Neg", "second");
  n2->inputs = {x};
  n2->outputs = {b};
  g.connect(n2);
  g.outputs.push_back(a);
  try {
    ir::verify(g);
    FAIL() << "verify accepted a use before definition";
  } catch (const InternalError &e) {
    std::string m = e.what();
    EXPECT_NE(m.find("first"), std::string::npos) << m;
    EXPECT_NE(m.find("'b'"), std::string::npos) << m;
    EXPECT_NE(m.find("before it is defined"), std::string::npos) << m;
  }
}

TEST(Passes, FoldsViewsOfConstantsByTheirBytes) {
  // Identity, Reshape, Unsqueeze of a constant keep its elements in order: folded to the same
  // bytes under the new dims (Identity shares the data), values unchanged.
  OnnxBuilder b(13);
  std::vector<float> w(24);
  for (int i = 0; i < 24; ++i)
    w[i] = 0.5f * static_cast<float>(i) - 3.f;
  b.initFloat("w", {2, 3, 4}, w);
  b.initInt64("shape", {2}, {4, 6});
  b.initInt64("axes", {1}, {0});
  b.node("Identity", {"w"}, {"same"}, "identity");
  b.node("Reshape", {"same", "shape"}, {"r"}, "reshape");
  b.node("Unsqueeze", {"r", "axes"}, {"u"}, "unsqueeze");
  b.outputUntyped("u");
  b.outputUntyped("same");
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  const ir::Value *same = g->findValue("same"), *u = g->findValue("u");
  ASSERT_TRUE(same && same->data && u && u->data) << ir::dump(*g);
  EXPECT_EQ(same->data, g->findValue("w")->data);
  EXPECT_EQ(u->data->dims, (std::vector<int64_t>{1, 4, 6}));
  ASSERT_EQ(u->data->numel(), 24);
  for (int i = 0; i < 24; ++i)
    EXPECT_EQ(u->data->as<float>()[i], w[i]) << i;
}

TEST(Passes, InferAndFoldShapeChainToSymbolicReshape) {
  OnnxBuilder b(13);
  b.input("x", {"batch", 4, 6});
  b.initInt64("idx0", {}, {0});
  b.initInt64("axes0", {1}, {0});
  b.initInt64("minus1", {1}, {-1});
  b.node("Shape", {"x"}, {"shp"}, "shape");
  b.node("Gather", {"shp", "idx0"}, {"bdim"}, "gather");
  b.node("Unsqueeze", {"bdim", "axes0"}, {"bdim1"}, "unsq");
  OnnxBuilder::attrInt(b.node("Concat", {"bdim1", "minus1"}, {"newshape"}, "concat"), "axis", 0);
  b.node("Reshape", {"x", "newshape"}, {"y"}, "reshape");
  b.outputUntyped("y");
  sym::Context ctx;
  frontend::ImportOptions opts;
  opts.dynamic["batch"] = {1, 32};
  auto g = b.import(ctx, opts);
  passes::inferAndFold(*g);
  ir::Value *y = g->findValue("y");
  ASSERT_NE(y, nullptr);
  ASSERT_TRUE(y->shapeKnown);
  ASSERT_EQ(y->rank(), 2) << ir::dump(*g);
  sym::Expr batch = *ctx.findSymbol("batch");
  EXPECT_EQ(y->shape[0], batch) << ir::shapeToString(y->shape);
  EXPECT_TRUE(y->shape[1].isConst(24)) << ir::shapeToString(y->shape);
  ir::Value *ns = g->findValue("newshape");
  ASSERT_NE(ns, nullptr);
  ASSERT_TRUE(ns->symData.has_value()) << "shape tensor not folded symbolically";
  ASSERT_EQ(ns->symData->size(), 2u);
  EXPECT_EQ((*ns->symData)[0], batch);
  EXPECT_TRUE((*ns->symData)[1].isConst(-1));
  // The range of the dynamic dim is the one asked for.
  sym::Range r = ctx.symbolRange(batch);
  EXPECT_EQ(r.lo, 1);
  EXPECT_EQ(r.hi, 32);
  // The Shape/Gather/Concat nodes may stay in the graph (their int64 results are only
  // symbolic, not full constants), but Lower.SymbolicReshapeNeedsNoShapeKernels checks
  // that they cost nothing at run time.
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "Reshape"), 1) << ir::dump(*g);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, DeadCodeEliminationRemovesUnusedBranch) {
  OnnxBuilder b;
  b.input("x", {2, 3});
  b.node("Relu", {"x"}, {"y"}, "keep");
  b.node("Sigmoid", {"x"}, {"unused1"}, "drop1");
  b.node("Exp", {"unused1"}, {"unused2"}, "drop2");
  b.output("y", {2, 3});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "Relu"), 1);
  EXPECT_EQ(countOp(*g, "Sigmoid"), 0) << ir::dump(*g);
  EXPECT_EQ(countOp(*g, "Exp"), 0) << ir::dump(*g);
  EXPECT_EQ(kiln::test::liveNodes(*g), 1);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, CommonSubexpressionsMerged) {
  OnnxBuilder b;
  b.input("x", {2, 3});
  b.node("Relu", {"x"}, {"a"}, "relu_a");
  b.node("Relu", {"x"}, {"b"}, "relu_b");
  b.node("Add", {"a", "b"}, {"y"}, "add");
  b.output("y", {2, 3});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::eliminateCommonSubexpressions(*g);
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "Relu"), 1) << ir::dump(*g);
  ir::Node *add = nullptr;
  for (auto &n : g->nodes)
    if (!n->dead && n->op == "Add") add = n.get();
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->input(0), add->input(1)) << ir::dump(*g);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, CseKeepsDifferentAttributesApart) {
  OnnxBuilder b;
  b.input("x", {2, 3});
  OnnxBuilder::attrFloat(b.node("LeakyRelu", {"x"}, {"a"}, "l1"), "alpha", 0.1f);
  OnnxBuilder::attrFloat(b.node("LeakyRelu", {"x"}, {"b"}, "l2"), "alpha", 0.2f);
  b.node("Add", {"a", "b"}, {"y"}, "add");
  b.output("y", {2, 3});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::eliminateCommonSubexpressions(*g);
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "LeakyRelu"), 2) << ir::dump(*g);
}

namespace {

// NCHW conv, stride 1, symmetric padding, float64.
std::vector<double> conv2d(const std::vector<double> &x, int C, int H, int Wd,
                           const std::vector<double> &w, const std::vector<double> &bias, int K,
                           int R, int pad) {
  int OH = H + 2 * pad - R + 1, OW = Wd + 2 * pad - R + 1;
  std::vector<double> y(static_cast<size_t>(K) * OH * OW);
  for (int k = 0; k < K; ++k)
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow) {
        double acc = bias.empty() ? 0.0 : bias[k];
        for (int c = 0; c < C; ++c)
          for (int r = 0; r < R; ++r)
            for (int s = 0; s < R; ++s) {
              int ih = oh + r - pad, iw = ow + s - pad;
              if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
              acc += x[(c * H + ih) * Wd + iw] * w[((k * C + c) * R + r) * R + s];
            }
        y[(k * OH + oh) * OW + ow] = acc;
      }
  return y;
}

std::vector<double> toD(const std::vector<float> &v) {
  return {v.begin(), v.end()};
}
std::vector<double> toD(const ir::TensorData &t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    v[i] = t.getDouble(i);
  return v;
}

} // namespace

TEST(Passes, FoldBatchNormIntoConvMatchesReference) {
  const int C = 3, K = 4, R = 3, H = 5, W = 5;
  const float eps = 1e-3f;
  auto w = randomVec(K * C * R * R, 1);
  auto bias = randomVec(K, 2);
  auto scale = randomVec(K, 3, 0.5f, 2.0f);
  auto beta = randomVec(K, 4);
  auto mean = randomVec(K, 5);
  auto var = randomVec(K, 6, 0.1f, 3.0f);
  OnnxBuilder b;
  b.input("x", {1, C, H, W});
  b.initFloat("w", {K, C, R, R}, w);
  b.initFloat("bias", {K}, bias);
  b.initFloat("scale", {K}, scale);
  b.initFloat("beta", {K}, beta);
  b.initFloat("mean", {K}, mean);
  b.initFloat("var", {K}, var);
  OnnxBuilder::attrInts(b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv"), "pads", {1, 1, 1, 1});
  OnnxBuilder::attrFloat(
      b.node("BatchNormalization", {"c", "scale", "beta", "mean", "var"}, {"y"}, "bn"), "epsilon",
      eps);
  b.output("y", {1, K, H, W});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::foldBatchNormIntoConv(*g);
  passes::eliminateDeadCode(*g);
  ASSERT_EQ(countOp(*g, "BatchNormalization"), 0) << ir::dump(*g);
  ASSERT_EQ(countOp(*g, "Conv"), 1) << ir::dump(*g);
  ir::Node *conv = nullptr;
  for (auto &n : g->nodes)
    if (!n->dead && n->op == "Conv") conv = n.get();
  ASSERT_EQ(conv->outputs[0], g->outputs[0]) << "folded conv must produce the graph output";
  ASSERT_NE(conv->input(1), nullptr);
  ASSERT_NE(conv->input(1)->data, nullptr) << "folded weights must be constant";
  ASSERT_NE(conv->input(2), nullptr) << "folded conv needs a bias";
  ASSERT_NE(conv->input(2)->data, nullptr);
  auto wf = toD(*conv->input(1)->data), bf = toD(*conv->input(2)->data);
  ASSERT_EQ(wf.size(), w.size());
  ASSERT_EQ(bf.size(), static_cast<size_t>(K));

  auto x = toD(randomVec(C * H * W, 7));
  auto ref = conv2d(x, C, H, W, toD(w), toD(bias), K, R, 1);
  for (int k = 0; k < K; ++k) {
    double s = scale[k] / std::sqrt(static_cast<double>(var[k]) + eps);
    for (int i = 0; i < H * W; ++i)
      ref[k * H * W + i] = (ref[k * H * W + i] - mean[k]) * s + beta[k];
  }
  auto got = conv2d(x, C, H, W, wf, bf, K, R, 1);
  double maxErr = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    maxErr = std::max(maxErr, std::abs(ref[i] - got[i]) / (1.0 + std::abs(ref[i])));
  EXPECT_LT(maxErr, 1e-5);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, FuseConvReluEpilogue) {
  OnnxBuilder b;
  b.input("x", {1, 2, 4, 4});
  b.initFloat("w", {3, 2, 1, 1}, randomVec(6, 9));
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"y"}, "relu");
  b.output("y", {1, 3, 4, 4});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseExternEpilogues(*g);
  passes::eliminateDeadCode(*g);
  EXPECT_EQ(countOp(*g, "Relu"), 0) << ir::dump(*g);
  ASSERT_EQ(countOp(*g, "Conv"), 1) << ir::dump(*g);
  EXPECT_EQ(kiln::test::liveNodes(*g), 1);
  ir::Node *conv = nullptr;
  for (auto &n : g->nodes)
    if (!n->dead && n->op == "Conv") conv = n.get();
  ASSERT_TRUE(conv->hasAttr("_kiln_post")) << ir::dump(*g);
  EXPECT_EQ(conv->attrInt("_kiln_post", 0), 1);
  EXPECT_EQ(conv->outputs[0], g->outputs[0]);
  EXPECT_EQ(conv->input(0), g->inputs[0]);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Passes, NoEpilogueFusionWhenConvOutputHasTwoUsers) {
  OnnxBuilder b;
  b.input("x", {1, 2, 4, 4});
  b.initFloat("w", {3, 2, 1, 1}, randomVec(6, 9));
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"r"}, "relu");
  b.node("Add", {"r", "c"}, {"y"}, "add");
  b.output("y", {1, 3, 4, 4});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseExternEpilogues(*g);
  passes::eliminateDeadCode(*g);
  // The pre-activation value is still needed by Add, so the Relu must stay separate.
  EXPECT_EQ(countOp(*g, "Relu"), 1) << ir::dump(*g);
  EXPECT_NO_THROW(ir::verify(*g));
}

TEST(Import, DimParamIsOneSharedSymbol) {
  OnnxBuilder b;
  b.input("a", {"batch", 4});
  b.input("c", {"batch", 4});
  b.node("Add", {"a", "c"}, {"y"}, "add");
  b.output("y", {"batch", 4});
  sym::Context ctx;
  frontend::ImportOptions opts;
  opts.dynamic["batch"] = {2, 9};
  auto g = b.import(ctx, opts);
  ASSERT_EQ(g->inputs.size(), 2u);
  EXPECT_TRUE(g->inputs[0]->shape[0].isSymbol());
  EXPECT_EQ(g->inputs[0]->shape[0], g->inputs[1]->shape[0]);
  EXPECT_TRUE(g->inputs[0]->shape[1].isConst(4));
  sym::Range r = ctx.symbolRange(g->inputs[0]->shape[0]);
  EXPECT_EQ(r.lo, 2);
  EXPECT_EQ(r.hi, 9);
  passes::inferAndFold(*g);
  EXPECT_EQ(g->findValue("y")->shape[0], g->inputs[0]->shape[0]);
}

TEST(Import, DynamicNameMustExist) {
  OnnxBuilder b;
  b.input("a", {"batch", 4});
  b.node("Relu", {"a"}, {"y"}, "relu");
  b.output("y", {"batch", 4});
  sym::Context ctx;
  frontend::ImportOptions opts;
  opts.dynamic["seq"] = {1, 8};
  try {
    b.import(ctx, opts);
    FAIL() << "--dynamic with an unknown dim name was accepted";
  } catch (const UserError &e) {
    EXPECT_NE(std::string(e.what()).find("seq"), std::string::npos) << e.what();
  }
}

TEST(Import, UnknownOpNamesNodeOpAndOpset) {
  OnnxBuilder b(15);
  b.input("a", {2});
  b.node("NoSuchOp", {"a"}, {"y"}, "weird");
  b.output("y", {2});
  sym::Context ctx;
  try {
    auto g = b.import(ctx);
    passes::inferAndFold(*g);
    FAIL() << "unknown op accepted";
  } catch (const UserError &e) {
    std::string m = e.what();
    EXPECT_NE(m.find("weird"), std::string::npos) << m;
    EXPECT_NE(m.find("NoSuchOp"), std::string::npos) << m;
    EXPECT_NE(m.find("15"), std::string::npos) << m;
  }
}

TEST(Import, AllInputDimsDynamicMakesFreshSymbols) {
  OnnxBuilder b;
  b.input("a", {3, 4});
  b.node("Relu", {"a"}, {"y"}, "relu");
  b.output("y", {3, 4});
  sym::Context ctx;
  frontend::ImportOptions opts;
  opts.allInputDimsDynamic = true;
  auto g = b.import(ctx, opts);
  ASSERT_EQ(g->inputs[0]->rank(), 2);
  EXPECT_TRUE(g->inputs[0]->shape[0].isSymbol());
  EXPECT_TRUE(g->inputs[0]->shape[1].isSymbol());
  EXPECT_NE(g->inputs[0]->shape[0], g->inputs[0]->shape[1]);
}

TEST(Passes, FuseMatMulBiasRelu) {
  OnnxBuilder b;
  b.input("x", {"batch", 8});
  b.initFloat("w", {8, 4}, randomVec(32, 3));
  b.initFloat("bias", {4}, randomVec(4, 4));
  b.node("MatMul", {"x", "w"}, {"mm"}, "mm");
  b.node("Add", {"bias", "mm"}, {"a"}, "add");
  b.node("Relu", {"a"}, {"y"}, "relu");
  b.output("y", {"batch", 4});
  sym::Context ctx;
  auto g = b.import(ctx);
  passes::inferAndFold(*g);
  passes::fuseExternEpilogues(*g);
  passes::eliminateDeadCode(*g);
  ASSERT_EQ(kiln::test::liveNodes(*g), 1) << ir::dump(*g);
  const ir::Node &mm = *g->nodes.front();
  EXPECT_EQ(mm.op, "MatMul");
  EXPECT_EQ(mm.inputs.size(), 3u);
  EXPECT_EQ(mm.attrInt("_kiln_post", 0), 1);
  EXPECT_EQ(mm.outputs[0], g->outputs[0]);
}
