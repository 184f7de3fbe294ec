// One ONNX graph -> graph IR: initializers, subgraph inputs, nodes with their attributes and
// subgraphs (captures of outer values), Constant nodes and outputs, with the checks of names.
#include "frontend/onnx/importer_state.h"

#include "frontend/onnx/tensor_proto.h"
#include "support/error.h"

#include <algorithm>
#include <cstring>

namespace kiln::frontend {

namespace {

// Hostile-input limit: subgraphs nested deeper than this are refused by name (protobuf's
// recursion limit, model_file.cpp, stays well above what that nesting needs).
constexpr int kMaxSubgraphDepth = 32;

} // namespace

ir::Value *Importer::resolve(Scope &s, const std::string &name) {
  if (ir::Value *v = s.g->findValue(name)) return v;
  if (!s.parent) return nullptr;
  ir::Value *outer = resolve(*s.parent, name);
  if (!outer) return nullptr;
  ir::Value *inner = s.g->newValue(name);
  s.g->captures.push_back({inner, 0});
  s.outer.push_back(outer);
  return inner;
}

ir::Attribute Importer::convertAttr(const onnx::AttributeProto &a, const std::string &ctxName,
                                    Scope &scope, std::vector<Scope> &subScopes) {
  ir::Attribute r;
  using A = onnx::AttributeProto;
  switch (a.type()) {
  case A::INT:
    r.kind = ir::Attribute::Kind::Int;
    r.i = a.i();
    break;
  case A::FLOAT:
    r.kind = ir::Attribute::Kind::Float;
    r.f = a.f();
    break;
  case A::STRING:
    r.kind = ir::Attribute::Kind::String;
    r.s = a.s();
    break;
  case A::INTS:
    r.kind = ir::Attribute::Kind::Ints;
    r.ints.assign(a.ints().begin(), a.ints().end());
    break;
  case A::FLOATS:
    r.kind = ir::Attribute::Kind::Floats;
    r.floats.assign(a.floats().begin(), a.floats().end());
    break;
  case A::STRINGS:
    r.kind = ir::Attribute::Kind::Strings;
    r.strings.assign(a.strings().begin(), a.strings().end());
    break;
  case A::TENSOR:
    r.kind = ir::Attribute::Kind::Tensor;
    r.tensor = convertTensor(a.t(), dir, ctxName);
    break;
  case A::TYPE_PROTO: // Optional's element type: not needed to lower, kept for dumps
    r.kind = ir::Attribute::Kind::String;
    r.s = a.tp().has_tensor_type() ? "tensor" : a.tp().has_sequence_type() ? "sequence" : "type";
    break;
  case A::GRAPH:
    r.kind = ir::Attribute::Kind::Graph;
    if (scope.depth() + 1 > kMaxSubgraphDepth)
      fail("{}: attribute '{}' nests subgraphs more than {} levels deep", ctxName, a.name(),
           kMaxSubgraphDepth);
    r.graph = std::make_shared<ir::Graph>(ctx);
    subScopes.push_back(Scope{r.graph.get(), &scope, {}});
    importGraph(a.g(), subScopes.back());
    break;
  default:
    fail("{}: attribute '{}' has unsupported type {}", ctxName, a.name(),
         A::AttributeType_Name(a.type()));
  }
  return r;
}

void Importer::checkNoNul(const std::string &name, const std::string &what) {
  if (name.find('\0') == std::string::npos) return;
  std::string shown;
  for (char c : name)
    shown += c == '\0' ? std::string("\\0") : std::string(1, c);
  fail("{}: {} '{}' contains a NUL byte; names must be C strings", where(), what, shown);
}

void Importer::checkNewName(const ir::Graph &g, const std::string &name, const std::string &what) {
  checkNoNul(name, "value name of " + what);
  if (name.empty() || !g.findValue(name)) return;
  const ir::Value *old = g.findValue(name);
  std::string first = old->producer       ? fmt::format("node '{}'", old->producer->name)
                      : old->data         ? std::string("an initializer")
                      : old->isGraphInput ? std::string("a graph input")
                                          : std::string("an earlier definition");
  fail("{}: value '{}' ({}) is defined more than once; first by {}", where(), name, what, first);
}

void Importer::checkOutputType(const std::string &name, const onnx::TypeProto &t, bool inner) {
  if (t.has_sequence_type() && t.sequence_type().elem_type().has_tensor_type()) return;
  if (t.has_optional_type() && !inner)
    return checkOutputType(name, t.optional_type().elem_type(), true);
  if (!t.has_tensor_type() && t.value_case() != onnx::TypeProto::VALUE_NOT_SET)
    fail("{}: output '{}' has a type kiln does not support (only tensors, sequences of "
         "tensors and optionals of these)",
         where(), name);
}

void Importer::importGraph(const onnx::GraphProto &gp, Scope &scope) {
  ir::Graph &g = *scope.g;
  bool sub = scope.parent != nullptr;
  g.isSubgraph = sub;
  std::set<std::string> initNames;
  for (const auto &init : gp.initializer()) {
    checkNewName(g, init.name(), "initializer");
    ir::Value *v = g.newValue(init.name());
    v->data = convertTensor(init, dir, where(), raw);
    // The IR holds its own copy now: release the protobuf's, so the weights are not held
    // twice for the rest of the import (the importer owns the parsed model).
    std::string().swap(*const_cast<onnx::TensorProto &>(init).mutable_raw_data());
    v->dtype = v->data->dtype;
    for (int64_t d : v->data->dims)
      v->shape.push_back(ctx.constant(d));
    v->shapeKnown = true;
    initNames.insert(init.name());
  }
  for (const auto &in : gp.input()) {
    if (initNames.count(in.name()))
      continue; // an initializer listed as input (old exporters): a constant
    checkNewName(g, in.name(), "graph input");
    if (!sub) {
      importInput(in.name(), in.type(), g);
      continue;
    }
    // A subgraph's inputs take dtype and shape from its node at lowering; a declared
    // element type is kept to be checked there.
    ir::Value *v = g.newValue(in.name());
    if (in.type().has_optional_type() || in.type().has_map_type())
      fail("{}: subgraph '{}' input '{}' is not a tensor or a sequence (optional/map inputs "
           "are not supported)",
           where(), gp.name(), in.name());
    int et = in.type().tensor_type().elem_type();
    if (in.type().has_sequence_type()) {
      // A loop-carried list: kiln unrolls such Loops at compile time.
      g.sequenceInputs.insert(g.inputs.size());
      et = in.type().sequence_type().elem_type().tensor_type().elem_type();
    }
    if (et && !dtypeFromOnnx(et, v->dtype))
      fail("{}: subgraph input '{}' has element type {}, which kiln does not support", where(),
           in.name(), onnxTypeName(et));
    g.inputs.push_back(v);
  }
  std::map<std::string, int> producedAt; // value → index of the node defining it
  for (int k = 0; k < gp.node_size(); ++k)
    for (const auto &o : gp.node(k).output())
      producedAt.emplace(o, k);
  int counter = 0;
  for (const auto &np : gp.node()) {
    std::string name = np.name().empty() ? fmt::format("{}_{}", np.op_type(), counter) : np.name();
    checkNoNul(name, "node name");
    ++counter;
    int nodeOpset = opset;
    std::string ctxName =
        fmt::format("{}: node '{}' ({}, opset {})", where(), name, np.op_type(), nodeOpset);
    if (np.op_type() == "Constant") {
      importConstant(np, g, ctxName);
      continue;
    }
    ir::Node *n = g.newNode(np.op_type(), name);
    n->domain = np.domain();
    n->opset = nodeOpset;
    std::vector<Scope> subScopes;
    subScopes.reserve(np.attribute_size()); // scopes are referenced while importing
    for (const auto &a : np.attribute())
      n->attrs[a.name()] = convertAttr(a, ctxName, scope, subScopes);
    for (const auto &inName : np.input()) {
      if (inName.empty()) {
        n->inputs.push_back(nullptr);
        continue;
      }
      ir::Value *v = resolve(scope, inName);
      if (!v) undefinedInput(gp, producedAt, counter - 1, ctxName, inName);
      n->inputs.push_back(v);
    }
    // Outer-scope values used by subgraphs become extra inputs after the ONNX ones.
    size_t explicitInputs = n->inputs.size();
    for (Scope &ss : subScopes) {
      for (size_t k = 0; k < ss.outer.size(); ++k) {
        auto begin = n->inputs.begin() + static_cast<std::ptrdiff_t>(explicitInputs);
        auto it = std::find(begin, n->inputs.end(), ss.outer[k]);
        ss.g->captures[k].nodeInput = static_cast<size_t>(it - n->inputs.begin());
        if (it == n->inputs.end()) n->inputs.push_back(ss.outer[k]);
      }
    }
    for (const auto &outName : np.output()) {
      checkNewName(g, outName, fmt::format("output of node '{}'", name));
      ir::Value *v = g.newValue(outName.empty() ? "" : outName);
      n->outputs.push_back(v);
    }
    g.connect(n);
  }
  for (const auto &out : gp.output()) {
    ir::Value *v = resolve(scope, out.name());
    if (!v) fail("{}: graph output '{}' is not produced by any node", where(), out.name());
    if (out.has_type()) checkOutputType(out.name(), out.type(), false);
    if (out.type().has_optional_type()) g.optionalOutputs.insert(g.outputs.size());
    if (out.type().has_sequence_type()) g.sequenceOutputs.insert(g.outputs.size());
    v->isGraphOutput = true;
    g.outputs.push_back(v);
  }
}

void Importer::undefinedInput(const onnx::GraphProto &gp,
                              const std::map<std::string, int> &producedAt, int at,
                              const std::string &ctxName, const std::string &inName) {
  auto it = producedAt.find(inName);
  if (it == producedAt.end())
    fail("{}: input '{}' is not defined by any earlier node, initializer or graph input", ctxName,
         inName);
  if (it->second == at) fail("{}: consumes its own output '{}' (a cycle)", ctxName, inName);
  // Follow the producers' inputs back from the later node; reaching node `at` is a cycle.
  std::vector<int> stack{it->second};
  std::set<int> seen;
  while (!stack.empty()) {
    int k = stack.back();
    stack.pop_back();
    if (!seen.insert(k).second) continue;
    for (const auto &i : gp.node(k).input()) {
      auto p = producedAt.find(i);
      if (p == producedAt.end()) continue;
      if (p->second == at)
        fail("{}: input '{}' comes from node '{}', which depends on this node's output: the "
             "graph has a cycle",
             ctxName, inName, gp.node(it->second).name());
      stack.push_back(p->second);
    }
  }
  fail("{}: input '{}' is produced by the later node '{}'; ONNX nodes must be in topological "
       "order",
       ctxName, inName, gp.node(it->second).name());
}

void Importer::importConstant(const onnx::NodeProto &np, ir::Graph &g, const std::string &ctxName) {
  if (opset > ir::kMaxOnnxOpset)
    fail("{}: the model imports ONNX opset {}, newer than kiln knows; kiln implements Constant "
         "as defined in opsets 1 to {} (re-export the model with opset {} or older)",
         ctxName, opset, ir::kMaxOnnxOpset, ir::kMaxOnnxOpset);
  if (np.output_size() != 1) fail("{}: Constant must have one output", ctxName);
  checkNewName(g, np.output(0), "output of a Constant node");
  // Exactly one value attribute and no inputs (a default-constructed TensorData would be a
  // float scalar without bytes).
  if (np.attribute_size() != 1)
    fail("{}: Constant needs exactly one value attribute (value, value_float, value_floats, "
         "value_int or value_ints), got {}",
         ctxName, np.attribute_size());
  if (np.input_size() != 0) fail("{}: Constant takes no inputs", ctxName);
  ir::Value *v = g.newValue(np.output(0));
  auto data = std::make_shared<ir::TensorData>();
  for (const auto &a : np.attribute()) {
    if (a.name() == "value") {
      data = convertTensor(a.t(), dir, ctxName);
    } else if (a.name() == "value_float") {
      data->dtype = DType::Float32;
      data->bytes.resize(4);
      float f = a.f();
      std::memcpy(data->bytes.data(), &f, 4);
    } else if (a.name() == "value_floats") {
      data->dtype = DType::Float32;
      data->dims = {a.floats_size()};
      data->bytes.resize(4 * a.floats_size());
      std::memcpy(data->bytes.data(), a.floats().data(), data->bytes.size());
    } else if (a.name() == "value_int") {
      data->dtype = DType::Int64;
      data->bytes.resize(8);
      int64_t x = a.i();
      std::memcpy(data->bytes.data(), &x, 8);
    } else if (a.name() == "value_ints") {
      data->dtype = DType::Int64;
      data->dims = {a.ints_size()};
      data->bytes.resize(8 * a.ints_size());
      std::memcpy(data->bytes.data(), a.ints().data(), data->bytes.size());
    } else {
      fail("{}: Constant attribute '{}' is not supported", ctxName, a.name());
    }
  }
  v->data = data;
  v->dtype = data->dtype;
  for (int64_t d : data->dims)
    v->shape.push_back(ctx.constant(d));
  v->shapeKnown = true;
}

} // namespace kiln::frontend
