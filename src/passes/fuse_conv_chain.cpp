// MobileNet inverted-residual blocks -- Conv 1x1 (expand; optional), depthwise Conv 3x3, Conv
// 1x1 (project), each with its fused Clip/Relu, the project with its fused residual -- become one
// internal `_KilnConvChain` node, run band by band of output rows by kiln_shim_conv_chain_v1
// so the expanded activations stay in cache (src/runtime/shim_conv_chain.cpp). Runs after
// fuseExternEpilogues, on targets whose convs are channels-last (the CPU).
#include "passes/passes.h"

#include "kiln/shim.h"

#include <cstdlib>
#include <cstring>

namespace kiln::passes {

namespace {

/// A post-op the chain shim applies (conv epilogues are Relu and Clip today; anything newer
/// keeps its conv).
bool chainPostOp(const ir::Node *n) {
  int64_t post = n->attrInt("_kiln_post", KILN_POST_NONE);
  return post == KILN_POST_NONE || post == KILN_POST_RELU || post == KILN_POST_CLIP;
}

bool allEqual(const std::vector<int64_t> &v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

/// A float32 2-D Conv with a constant 4-D weight of static shape, explicit pads (no auto_pad)
/// and dilation 1; `shape` receives the weight's dims.
bool plainConv(const ir::Node *n, int64_t shape[4]) {
  if (!n || n->dead || n->op != "Conv" || !n->domain.empty() || n->outputs.size() != 1)
    return false;
  const ir::Value *x = n->input(0), *w = n->input(1), *b = n->input(2);
  if (!x || !w || x->dtype != DType::Float32 || x->rank() != 4 || !w->data || w->rank() != 4)
    return false;
  if (b && (!b->data || b->dtype != DType::Float32)) return false;
  for (int i = 0; i < 4; ++i) {
    if (!w->shape[i].isConst()) return false;
    shape[i] = *w->shape[i].constValue();
  }
  std::string autoPad = n->attrString("auto_pad", "NOTSET");
  return (autoPad == "NOTSET" || autoPad.empty()) && allEqual(n->attrInts("dilations", {1}), 1) &&
         chainPostOp(n);
}

/// A 1x1 conv with groups 1, stride 1, no pads and no residual unless `residualOk`.
bool pointwise(const ir::Node *n, bool residualOk) {
  int64_t w[4];
  return plainConv(n, w) && w[2] == 1 && w[3] == 1 && n->attrInt("group", 1) == 1 &&
         allEqual(n->attrInts("strides", {1}), 1) && allEqual(n->attrInts("pads", {0}), 0) &&
         (residualOk || !n->input(3));
}

/// A depthwise 3x3 conv (groups = channels, one weight per group) with equal strides 1 or 2,
/// pads <= 1 and no residual.
bool depthwise3x3(const ir::Node *n) {
  int64_t w[4];
  if (!plainConv(n, w) || w[1] != 1 || w[2] != 3 || w[3] != 3 || n->input(3)) return false;
  if (n->attrInt("group", 1) != w[0]) return false;
  std::vector<int64_t> s = n->attrInts("strides", {1, 1}), pads = n->attrInts("pads", {0});
  if (s.size() != 2 || s[0] != s[1] || s[0] < 1 || s[0] > 2) return false;
  for (int64_t p : pads)
    if (p < 0 || p > 1) return false;
  return true;
}

std::vector<float> clipOf(const ir::Node &n) {
  if (n.attrInt("_kiln_post", KILN_POST_NONE) != KILN_POST_CLIP) return {0.f, 0.f};
  return n.attrFloats("_kiln_clip");
}

/// [expand ->] dw -> project becomes `project`'s place: a _KilnConvChain of inputs x, w_e,
/// b_e (both null without an expansion), w_d, b_d, w_p, b_p, residual, with dw's geometry
/// attributes and every conv's post-op (none for a missing expansion).
void rewrite(ir::Node *expand, ir::Node &dw, ir::Node &project) {
  ir::Node &fused = project;
  std::vector<ir::Value *> inputs{expand ? expand->input(0) : dw.input(0)};
  std::vector<int64_t> posts;
  std::vector<float> clips;
  for (ir::Node *n : {expand, &dw, &project}) {
    inputs.push_back(n ? n->input(1) : nullptr);
    inputs.push_back(n ? n->input(2) : nullptr);
    posts.push_back(n ? n->attrInt("_kiln_post", KILN_POST_NONE) : int64_t{KILN_POST_NONE});
    for (float f : n ? clipOf(*n) : std::vector<float>{0.f, 0.f})
      clips.push_back(f);
  }
  inputs.push_back(project.input(3));
  std::map<std::string, ir::Attribute> attrs;
  for (const char *k : {"strides", "pads", "group", "kernel_shape"})
    if (dw.hasAttr(k)) attrs[k] = dw.attrs.at(k);
  ir::Attribute postAttr, clipAttr;
  postAttr.kind = ir::Attribute::Kind::Ints;
  postAttr.ints = posts;
  clipAttr.kind = ir::Attribute::Kind::Floats;
  clipAttr.floats = clips;
  attrs["_kiln_posts"] = postAttr;
  attrs["_kiln_clips"] = clipAttr;
  fused.name = (expand ? expand->name + "+" : "") + dw.name + "+" + project.name;
  fused.op = "_KilnConvChain";
  fused.inputs = std::move(inputs);
  fused.attrs = std::move(attrs);
  if (expand) expand->dead = true;
  dw.dead = true;
}

/// The pointwise conv that is the sole user of depthwise conv dw's output, or null.
ir::Node *projectionOf(ir::Node *dw) {
  if (!depthwise3x3(dw)) return nullptr;
  ir::Node *project = soleUser(dw->outputs[0]);
  if (!pointwise(project, true) || project->input(0) != dw->outputs[0]) return nullptr;
  return project;
}

} // namespace

bool convChainFusionWanted(const sched::Target &t) {
  if (!t.fuseConvChain || !t.convChannelsLast) return false;
  const char *env = std::getenv("KILN_FUSE_CONV_CHAIN");
  return !env || std::strcmp(env, "0") != 0;
}

void fuseConvChains(ir::Graph &g) {
  bool changed = false;
  // Whole blocks first, so a depthwise conv is never taken from its expansion.
  for (auto &np : g.nodes) {
    ir::Node *expand = np.get();
    if (!pointwise(expand, false)) continue;
    ir::Node *dw = soleUser(expand->outputs[0]);
    if (!dw || dw->input(0) != expand->outputs[0]) continue;
    if (ir::Node *project = projectionOf(dw)) {
      rewrite(expand, *dw, *project);
      changed = true;
    }
  }
  // Blocks without an expansion (MobileNetV2's first): the depthwise output stays in cache.
  for (auto &np : g.nodes)
    if (ir::Node *project = projectionOf(np.get())) {
      rewrite(nullptr, *np, *project);
      changed = true;
    }
  if (changed) g.compact();
}

} // namespace kiln::passes
