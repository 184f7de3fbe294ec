#include "ir/graph.h"

#include "kiln/prelude.h"
#include "support/error.h"

#include <cstring>
#include <map>
#include <set>
#include <sstream>

namespace kiln::ir {

int64_t TensorData::numel() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

template <typename F> static auto visitElement(const TensorData &t, int64_t i, F f) {
  if (minifloatFormat(t.dtype) >= 0)
    return f(kiln_mf_decode(t.as<uint8_t>()[i], minifloatFormat(t.dtype)));
  if (isSubByteInt(t.dtype)) // one element per byte, already sign- or zero-extended
    return isSigned(t.dtype) ? f(static_cast<int>(t.as<int8_t>()[i]))
                             : f(static_cast<int>(t.as<uint8_t>()[i]));
  switch (t.dtype) {
  case DType::Float32:
    return f(t.as<float>()[i]);
  case DType::Float64:
    return f(t.as<double>()[i]);
  case DType::Int8:
    return f(t.as<int8_t>()[i]);
  case DType::Int16:
    return f(t.as<int16_t>()[i]);
  case DType::Int32:
    return f(t.as<int32_t>()[i]);
  case DType::Int64:
    return f(t.as<int64_t>()[i]);
  case DType::UInt8:
    return f(t.as<uint8_t>()[i]);
  case DType::UInt16:
    return f(t.as<uint16_t>()[i]);
  case DType::UInt32:
    return f(t.as<uint32_t>()[i]);
  case DType::UInt64:
    return f(t.as<uint64_t>()[i]);
  case DType::Bool:
    return f(t.as<uint8_t>()[i] != 0);
  case DType::Float16:
    return f(kiln_h2f(t.as<uint16_t>()[i]));
  case DType::BFloat16:
    return f(kiln_bf2f(t.as<uint16_t>()[i]));
  case DType::Float8E4M3FN: // handled above: one byte per element
  case DType::Float8E4M3FNUZ:
  case DType::Float8E5M2:
  case DType::Float8E5M2FNUZ:
  case DType::Float4E2M1:
  case DType::Float8E8M0:
  case DType::UInt4:
  case DType::Int4:
  case DType::UInt2:
  case DType::Int2:
  case DType::String:
    break;
  }
  KILN_ASSERT(false, "element access on {}", dtypeName(t.dtype));
  return f(0);
}

double TensorData::getDouble(int64_t i) const {
  return visitElement(*this, i, [](auto v) { return static_cast<double>(v); });
}
int64_t TensorData::getInt(int64_t i) const {
  return visitElement(*this, i, [](auto v) { return static_cast<int64_t>(v); });
}

int64_t Node::attrInt(const std::string &k, int64_t dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.i;
}
float Node::attrFloat(const std::string &k, float dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.f;
}
std::string Node::attrString(const std::string &k, const std::string &dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.s;
}
std::vector<int64_t> Node::attrInts(const std::string &k, std::vector<int64_t> dflt) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? dflt : it->second.ints;
}
std::vector<std::string> Node::attrStrings(const std::string &k) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? std::vector<std::string>{} : it->second.strings;
}
std::vector<float> Node::attrFloats(const std::string &k) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? std::vector<float>{} : it->second.floats;
}
std::string Node::describe() const {
  return fmt::format("node '{}' ({}, opset {})", name, op, opset);
}

Value *Graph::newValue(const std::string &name) {
  values.push_back(std::make_unique<Value>());
  Value *v = values.back().get();
  v->name = name;
  if (!name.empty()) byName_[name] = v;
  return v;
}

Node *Graph::newNode(const std::string &op, const std::string &name) {
  nodes.push_back(std::make_unique<Node>());
  Node *n = nodes.back().get();
  n->op = op;
  n->name = name;
  return n;
}

void Graph::connect(Node *n) {
  for (Value *v : n->inputs)
    if (v) v->users.push_back(n);
  for (Value *v : n->outputs)
    if (v) v->producer = n;
}

Value *Graph::findValue(const std::string &name) const {
  auto it = byName_.find(name);
  return it == byName_.end() ? nullptr : it->second;
}

void Graph::compact() {
  std::deque<std::unique_ptr<Node>> live;
  for (auto &n : nodes)
    if (!n->dead) live.push_back(std::move(n));
  nodes = std::move(live);
  for (auto &v : values) {
    v->users.clear();
    v->producer = nullptr;
  }
  for (auto &n : nodes)
    connect(n.get());
}

std::unique_ptr<Graph> clone(const Graph &g) {
  auto r = std::make_unique<Graph>(g.ctx());
  std::map<const Value *, Value *> vm;
  auto map = [&](const Value *v) { return v ? vm.at(v) : nullptr; };
  for (const auto &v : g.values) {
    Value *c = r->newValue(v->name);
    c->dtype = v->dtype;
    c->shape = v->shape;
    c->shapeKnown = v->shapeKnown;
    c->data = v->data;
    c->symData = v->symData;
    c->isGraphInput = v->isGraphInput;
    c->isGraphOutput = v->isGraphOutput;
    vm[v.get()] = c;
  }
  for (const auto &n : g.nodes) {
    Node *c = r->newNode(n->op, n->name);
    c->domain = n->domain;
    c->opset = n->opset;
    c->attrs = n->attrs;
    c->dead = n->dead;
    for (const Value *v : n->inputs)
      c->inputs.push_back(map(v));
    for (const Value *v : n->outputs)
      c->outputs.push_back(map(v));
    r->connect(c);
  }
  for (const Value *v : g.inputs)
    r->inputs.push_back(map(v));
  for (const Value *v : g.outputs)
    r->outputs.push_back(map(v));
  r->modelPath = g.modelPath;
  r->isSubgraph = g.isSubgraph;
  r->optionalOutputs = g.optionalOutputs;
  r->sequenceOutputs = g.sequenceOutputs;
  r->sequenceInputs = g.sequenceInputs;
  r->guards = g.guards;
  for (const Capture &c : g.captures)
    r->captures.push_back({map(c.inner), c.nodeInput});
  return r;
}

std::string shapeToString(const Shape &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + sym::toString(s[i]);
  return r + "]";
}

static std::string valueRef(const Value *v) {
  if (!v) return "<absent>";
  return fmt::format("%{}:{}{}", v->name, dtypeName(v->dtype), shapeToString(v->shape));
}

std::string dump(const Graph &g) {
  std::ostringstream os;
  os << "graph(";
  for (size_t i = 0; i < g.inputs.size(); ++i)
    os << (i ? ", " : "") << valueRef(g.inputs[i]);
  os << ") {\n";
  for (const auto &n : g.nodes) {
    os << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i)
      os << (i ? ", " : "") << valueRef(n->outputs[i]);
    os << " = " << n->op << "(";
    for (size_t i = 0; i < n->inputs.size(); ++i)
      os << (i ? ", " : "") << (n->inputs[i] ? "%" + n->inputs[i]->name : "<absent>");
    os << ")";
    if (!n->attrs.empty()) {
      os << " {";
      bool first = true;
      for (auto &[k, a] : n->attrs) {
        os << (first ? "" : ", ") << k;
        first = false;
        if (a.kind == Attribute::Kind::Int)
          os << "=" << a.i;
        else if (a.kind == Attribute::Kind::Float)
          os << "=" << a.f;
        else if (a.kind == Attribute::Kind::String)
          os << "=\"" << a.s << "\"";
        else if (a.kind == Attribute::Kind::Ints) {
          os << "=[";
          for (size_t i = 0; i < a.ints.size(); ++i)
            os << (i ? "," : "") << a.ints[i];
          os << "]";
        } else if (a.kind == Attribute::Kind::Graph && a.graph) {
          os << "=<subgraph>";
        }
      }
      os << "}";
    }
    os << "\n";
    for (auto &[k, a] : n->attrs) {
      if (a.kind != Attribute::Kind::Graph || !a.graph) continue;
      std::istringstream sub(dump(*a.graph));
      for (std::string line; std::getline(sub, line);)
        os << "    | " << (line.rfind("graph(", 0) == 0 ? k + " = " : "") << line << "\n";
    }
  }
  os << "  return ";
  for (size_t i = 0; i < g.outputs.size(); ++i)
    os << (i ? ", " : "") << "%" << g.outputs[i]->name;
  os << "\n}\n";
  return os.str();
}

void verify(const Graph &g) {
  std::set<const Value *> defined;
  for (const Value *v : g.inputs)
    defined.insert(v);
  for (const auto &v : g.values)
    if (v->data || v->symData) // known at compile time: needs no producer at run time
      defined.insert(v.get());
  for (const auto &n : g.nodes) {
    for (const Value *in : n->inputs)
      KILN_ASSERT(!in || defined.count(in), "{} uses '{}' before it is defined", n->describe(),
                  in->name);
    for (const Value *out : n->outputs) {
      KILN_ASSERT(out && out->producer == n.get(), "{} output has wrong producer", n->describe());
      KILN_ASSERT(out->shapeKnown, "{} output '{}' has no shape", n->describe(), out->name);
      defined.insert(out);
    }
  }
  for (const Value *v : g.outputs)
    KILN_ASSERT(defined.count(v), "graph output '{}' is never defined", v->name);
}

} // namespace kiln::ir
