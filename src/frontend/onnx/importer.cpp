// The import of a parsed model (importParsedModel): its opsets, the main graph's inputs with
// their dims as constants or symbols (--dynamic, --all-dims-dynamic, --input-shape), sequence
// and optional inputs, and the check that every such flag names something in the model.
#include "frontend/onnx/importer.h"

#include "frontend/onnx/importer_state.h"
#include "support/error.h"

#include <algorithm>
#include <onnx/onnx_pb.h>
#include <set>

namespace kiln::frontend {

sym::Expr Importer::dimExpr(const onnx::TensorShapeProto_Dimension &d, const std::string &input,
                            int index, std::string scope) {
  auto scoped = [&](const std::string &n) { return scope.empty() ? n : scope + "." + n; };
  checkNoNul(d.dim_param(), fmt::format("input '{}' dim {} dim_param", input, index));
  if (d.has_dim_value() && d.dim_value() < 0)
    fail("{}: input '{}' dim {} is {}; dims must be >= 0", where(), input, index, d.dim_value());
  if (opts.allInputDimsDynamic) {
    std::string bare = d.has_dim_param() && !d.dim_param().empty()
                           ? d.dim_param()
                           : fmt::format("{}_d{}", input, index);
    std::string name = d.has_dim_param() && !d.dim_param().empty() ? scoped(bare) : bare;
    dimNames.insert(bare);
    // --dynamic NAME=MIN:MAX still sets the range of the dim it names.
    auto given = opts.dynamic.find(bare);
    if (given != opts.dynamic.end()) {
      usedDynamic.insert(bare);
      sym::Expr s = ctx.symbol(name, given->second.min, given->second.max);
      if (d.has_dim_value()) ctx.setHint(s, d.dim_value());
      return s;
    }
    sym::Expr s = ctx.symbol(name, 0, 1 << 20); // zero-size tensors are valid ONNX
    if (d.has_dim_value()) ctx.setHint(s, d.dim_value());
    return s;
  }
  if (d.has_dim_value()) {
    if (d.dim_value() < 0)
      fail("{}: input '{}' dim {} is {}; dims must be >= 0", where(), input, index, d.dim_value());
    return ctx.constant(d.dim_value());
  }
  std::string name = d.dim_param();
  if (name.empty()) {
    name = fmt::format("{}_d{}", input, index); // already the input's own
    scope.clear();
  }
  dimNames.insert(name);
  auto it = opts.dynamic.find(name);
  if (it != opts.dynamic.end()) {
    usedDynamic.insert(name);
    return ctx.symbol(scoped(name), it->second.min, it->second.max);
  }
  return ctx.symbol(scoped(name), 0, INT32_MAX); // zero-size tensors are valid ONNX
}

ir::Value *Importer::tensorInput(const std::string &name, const onnx::TypeProto_Tensor &tt,
                                 ir::Graph &g, const std::string &seqName) {
  ir::Value *v = g.newValue(name);
  v->isGraphInput = true;
  if (!dtypeFromOnnx(tt.elem_type(), v->dtype))
    fail("{}: input '{}' has element type {}, which kiln does not support", where(), name,
         onnxTypeName(tt.elem_type()));
  onnx::TensorShapeProto shape = tt.shape();
  auto given = opts.inputShapes.find(name);
  if (given == opts.inputShapes.end() && !seqName.empty()) given = opts.inputShapes.find(seqName);
  if (given != opts.inputShapes.end()) {
    usedShapes.insert(given->first);
    shape.Clear();
    for (const std::string &d : given->second) {
      bool number = !d.empty() && d.find_first_not_of("0123456789") == std::string::npos;
      if (number)
        shape.add_dim()->set_dim_value(std::stoll(d));
      else
        shape.add_dim()->set_dim_param(d);
    }
  } else if (!tt.has_shape()) {
    if (seqName.empty())
      fail("{}: input '{}' has no shape; give its rank in the model or its shape with "
           "--input-shape {}=D0,D1,...",
           where(), name, name);
    fail("{}: the items of sequence input '{}' have no shape in the model; give it with "
         "--input-shape {}=D0,D1,... (every item) or --input-shape {}=... (one item)",
         where(), seqName, seqName, name);
  }
  for (int d = 0; d < shape.dim_size(); ++d)
    v->shape.push_back(dimExpr(shape.dim(d), name, d, seqName.empty() ? "" : name));
  checkStaticSize(*v, fmt::format("input '{}'", name));
  v->shapeKnown = true;
  g.inputs.push_back(v);
  return v;
}

void Importer::importInput(const std::string &name, const onnx::TypeProto &type, ir::Graph &g) {
  if (type.has_tensor_type()) {
    tensorInput(name, type.tensor_type(), g, "");
    return;
  }
  ir::Node *n = nullptr;
  if (type.has_sequence_type()) {
    const onnx::TypeProto &item = type.sequence_type().elem_type();
    if (!item.has_tensor_type())
      fail("{}: input '{}' is a sequence of non-tensors; kiln supports sequences of tensors",
           where(), name);
    auto len = opts.sequenceLengths.find(name);
    if (len == opts.sequenceLengths.end())
      fail("{}: input '{}' is a sequence; give its length with --sequence-length {}=N (its "
           "items become tensor inputs {}.0 ... {}.<N-1>)",
           where(), name, name, name, name);
    usedSeqLengths.insert(name);
    n = g.newNode(len->second ? "SequenceConstruct" : "SequenceEmpty", name + ".sequence");
    for (int64_t k = 0; k < len->second; ++k)
      n->inputs.push_back(tensorInput(fmt::format("{}.{}", name, k), item.tensor_type(), g, name));
    ir::Attribute dtype;
    dtype.i = item.tensor_type().elem_type();
    if (!len->second) n->attrs["dtype"] = dtype;
  } else if (type.has_optional_type()) {
    auto given = opts.optionalPresent.find(name);
    if (given != opts.optionalPresent.end()) usedOptionals.insert(name);
    if (given == opts.optionalPresent.end() || given->second) {
      importInput(name, type.optional_type().elem_type(), g);
      return;
    }
    n = g.newNode("Optional", name + ".absent"); // an empty optional
  } else {
    fail("{}: input '{}' has a type kiln does not support (only tensors, sequences of "
         "tensors and optionals of these)",
         where(), name);
  }
  n->opset = opset;
  n->outputs.push_back(g.newValue(name));
  g.connect(n);
}

void Importer::checkStaticSize(const ir::Value &v, const std::string &what) {
  int64_t bytes = v.dtype == DType::String ? 8 : static_cast<int64_t>(dtypeSize(v.dtype));
  for (const sym::Expr &d : v.shape) {
    auto c = d.constValue();
    if (!c || *c == 0) continue;
    if (__builtin_mul_overflow(bytes, *c, &bytes))
      fail("{}: {} has dims whose byte size overflows int64", where(), what);
  }
}

std::unique_ptr<ir::Graph> importParsedModel(onnx::ModelProto &model, const std::string &dir,
                                             const std::string &displayName, sym::Context &ctx,
                                             const ImportOptions &opts, const RawDataIndex *raw) {
  if (!model.has_graph() || model.graph().node_size() == 0)
    fail("'{}' is not an ONNX model: it has no graph nodes", displayName);
  Importer im{ctx, opts, dir, displayName, raw};
  std::set<std::string> domains;
  for (const auto &op : model.opset_import()) {
    bool onnxDomain = op.domain().empty() || op.domain() == "ai.onnx";
    if (!domains.insert(onnxDomain ? "ai.onnx" : op.domain()).second)
      fail("'{}' imports an opset for domain '{}' more than once", displayName,
           onnxDomain ? "ai.onnx" : op.domain());
    if (onnxDomain && (op.version() < 1 || op.version() > INT32_MAX))
      fail("'{}' imports ONNX opset {}; kiln supports opsets 1 to {}", displayName, op.version(),
           ir::kMaxOnnxOpset);
    if (onnxDomain) im.opset = static_cast<int>(op.version());
  }
  bool usesOnnxDomain = std::any_of(
      model.graph().node().begin(), model.graph().node().end(),
      [](const onnx::NodeProto &n) { return n.domain().empty() || n.domain() == "ai.onnx"; });
  if (im.opset == 0 && !usesOnnxDomain) im.opset = 1; // only other domains' ops: refused by op
  if (im.opset == 0)
    fail("'{}' has no opset_import for the default ONNX domain, which its nodes use; every "
         "ONNX model must declare its opset",
         displayName);
  // A newer opset is refused per node, naming the op (lower::Lowerer::lowerNode).
  auto g = std::make_unique<ir::Graph>(ctx);
  g->modelPath = displayName;
  Importer::Scope top{g.get(), nullptr, {}};
  im.importGraph(model.graph(), top);
  for (const auto &[name, range] : opts.dynamic)
    if (!im.usedDynamic.count(name)) {
      std::string known;
      for (const std::string &n : im.dimNames)
        known += (known.empty() ? "" : ", ") + n;
      fail("--dynamic {}: model '{}' has no symbolic input dim named '{}'; its symbolic dims "
           "are: {} (with --all-dims-dynamic every dim can be named, as <input>_d<index> "
           "where it has no name)",
           name, displayName, name, known.empty() ? "none (every input dim is fixed)" : known);
    }
  auto unused = [&](const char *flag, const auto &given, const std::set<std::string> &used,
                    const char *kind) {
    for (const auto &[name, value] : given)
      if (!used.count(name))
        fail("{} {}: model '{}' has no {}input named '{}'", flag, name, displayName, kind, name);
  };
  unused("--sequence-length", opts.sequenceLengths, im.usedSeqLengths, "sequence ");
  unused("--optional", opts.optionalPresent, im.usedOptionals, "optional ");
  unused("--input-shape", opts.inputShapes, im.usedShapes, "");
  return g;
}

} // namespace kiln::frontend
