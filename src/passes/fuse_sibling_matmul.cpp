// Sibling MatMuls (one input A, constant 2-D weights of the same K, each with an optional
// fused row bias) become one internal `_KilnMatMulMulti` node: one GEMM along N on the CPU
// (kiln_shim_matmul_multi_v1). The weights stay separate constants -- the runtime builds the
// concatenated, packed B in its derived-weights cache from them -- so updating one of them by
// name still takes effect on the next run.
#include "passes/passes.h"

#include "kiln/shim.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace kiln::passes {

namespace {

/// A float32 MatMul this pass can join: A of rank >= 2, a constant 2-D B whose K matches A's
/// last dim and whose N is static, an optional 1-D bias of length N (fuseExternEpilogues' row
/// addend), no residual, no post-op, and an output that is not a graph output (the fused
/// node's outputs are views into one buffer).
bool joinable(const ir::Node &n) {
  if (n.dead || n.op != "MatMul" || !n.domain.empty() || n.outputs.size() != 1 ||
      n.inputs.size() < 2 || n.inputs.size() > 3 || n.attrInt("_kiln_post", 0) != 0)
    return false;
  const ir::Value *a = n.input(0), *b = n.input(1), *bias = n.input(2), *out = n.outputs[0];
  if (!a || !b || !out || out->isGraphOutput || out->dtype != DType::Float32) return false;
  if (a->dtype != DType::Float32 || a->rank() < 2) return false;
  if (!b->data || b->dtype != DType::Float32 || b->rank() != 2 || !b->shape[1].isConst())
    return false;
  if (!sym::provablyEqual(b->shape[0], a->shape.back())) return false;
  if (bias && (bias->dtype != DType::Float32 || bias->rank() != 1 ||
               !sym::provablyEqual(bias->shape[0], b->shape[1])))
    return false;
  return true;
}

/// Rewrites `group` (in graph order, all joinable on one A) into its first node.
void rewrite(const std::vector<ir::Node *> &group) {
  ir::Node &fused = *group.front();
  std::vector<ir::Value *> inputs{fused.input(0)}, outputs;
  std::string names;
  for (ir::Node *n : group) {
    inputs.push_back(n->input(1));
    inputs.push_back(n->input(2)); // nullptr: no bias
    outputs.push_back(n->outputs[0]);
    names += (names.empty() ? "" : "+") + n->name;
    if (n != &fused) n->dead = true;
  }
  fused.op = "_KilnMatMulMulti";
  fused.inputs = std::move(inputs);
  fused.outputs = std::move(outputs);
  fused.attrs.clear();
  fused.name = names;
}

} // namespace

bool siblingMatMulFusionWanted(const sched::Target &t) {
  if (!t.fuseSiblingMatMul) return false;
  const char *env = std::getenv("KILN_FUSE_SIBLING_MATMUL");
  return !env || std::strcmp(env, "0") != 0;
}

void fuseSiblingMatMuls(ir::Graph &g) {
  // Candidates per shared input, in graph order; the fused node takes the place of the first,
  // where A and every constant are available.
  std::map<const ir::Value *, std::vector<ir::Node *>> byInput;
  std::vector<const ir::Value *> order;
  for (auto &np : g.nodes) {
    if (!joinable(*np)) continue;
    auto &list = byInput[np->input(0)];
    if (list.empty()) order.push_back(np->input(0));
    list.push_back(np.get());
  }
  bool changed = false;
  for (const ir::Value *a : order) {
    const std::vector<ir::Node *> &all = byInput[a];
    for (size_t begin = 0; begin + 1 < all.size(); begin += KILN_MATMUL_MULTI_MAX) {
      size_t end = std::min(all.size(), begin + KILN_MATMUL_MULTI_MAX);
      if (end - begin < 2) break;
      rewrite(std::vector<ir::Node *>(all.begin() + begin, all.begin() + end));
      changed = true;
    }
  }
  if (changed) g.compact();
}

} // namespace kiln::passes
