#include "passes/passes.h"

#include <fmt/format.h>
#include <map>

namespace kiln::passes {

namespace {

std::string attrKey(const ir::Attribute &a) {
  switch (a.kind) {
  case ir::Attribute::Kind::Int:
    return fmt::format("i{}", a.i);
  case ir::Attribute::Kind::Float:
    return fmt::format("f{}", a.f);
  case ir::Attribute::Kind::String:
    return "s" + a.s;
  case ir::Attribute::Kind::Ints:
    return fmt::format("I{}", fmt::join(a.ints, ","));
  case ir::Attribute::Kind::Floats:
    return fmt::format("F{}", fmt::join(a.floats, ","));
  case ir::Attribute::Kind::Strings:
    return fmt::format("S{}", fmt::join(a.strings, ","));
  case ir::Attribute::Kind::Tensor:
  case ir::Attribute::Kind::Graph:
    return fmt::format("p{}", (const void *)&a);
  }
  return "";
}

std::string nodeKey(const ir::Node &n) {
  std::string k = n.domain + "::" + n.op + "(";
  for (const ir::Value *v : n.inputs)
    k += fmt::format("{},", (const void *)v);
  k += "){";
  for (auto &[name, a] : n.attrs)
    k += name + "=" + attrKey(a) + ";";
  return k + "}";
}

/// Whether a and b give outputs of the same shapes. Two NonZero (or NMS, Unique) nodes on one
/// input have a size symbol each, which shape values computed from the dropped node's output
/// (a TopK k = min(count, K)) would keep mentioning after a merge: such nodes stay apart.
bool sameShapes(const ir::Node &a, const ir::Node &b) {
  for (size_t i = 0; i < a.outputs.size(); ++i) {
    const ir::Value *x = a.outputs[i], *y = b.outputs[i];
    if (!x || !y) continue;
    if (x->shape.size() != y->shape.size()) return false;
    for (size_t d = 0; d < x->shape.size(); ++d)
      if (x->shape[d] != y->shape[d]) return false;
  }
  return true;
}

} // namespace

void eliminateCommonSubexpressions(ir::Graph &g) {
  std::map<std::string, ir::Node *> seen;
  std::map<ir::Value *, ir::Value *> repl;
  for (auto &np : g.nodes) {
    ir::Node &n = *np;
    for (ir::Value *&in : n.inputs) {
      auto it = repl.find(in);
      if (in && it != repl.end()) in = it->second;
    }
    bool graphOut = false;
    for (ir::Value *o : n.outputs)
      graphOut |= o && o->isGraphOutput;
    std::string key = nodeKey(n);
    auto it = seen.find(key);
    if (it == seen.end() || graphOut || n.outputs.size() != it->second->outputs.size() ||
        !sameShapes(n, *it->second)) {
      seen.emplace(key, &n);
      continue;
    }
    for (size_t i = 0; i < n.outputs.size(); ++i)
      repl[n.outputs[i]] = it->second->outputs[i];
    n.dead = true;
  }
  for (ir::Value *&o : g.outputs) {
    auto it = repl.find(o);
    if (it != repl.end()) o = it->second;
  }
  g.compact();
}

} // namespace kiln::passes
