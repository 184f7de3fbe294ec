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
    if (it == seen.end() || graphOut || n.outputs.size() != it->second->outputs.size()) {
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
