// Internals of the ONNX importer shared by importer.cpp (the model, its inputs and flags)
// and graph_import.cpp (graphs, nodes, attributes, constants). Not a public interface.
#pragma once

#include "frontend/onnx/importer.h"

#include <fmt/format.h>
#include <map>
#include <onnx/onnx_pb.h>
#include <set>
#include <string>
#include <vector>

namespace kiln::frontend {

/// The state of one model's import and its steps.
struct Importer {
  sym::Context &ctx;
  const ImportOptions &opts;
  std::string dir, file;
  const RawDataIndex *raw = nullptr; // the main graph's initializers' raw_data
  int opset = 0;
  std::set<std::string> usedDynamic, usedSeqLengths, usedOptionals, usedShapes;
  std::set<std::string> dimNames; // every input dim name --dynamic could have named
  int anonSymbols = 0;

  std::string where() const { return fmt::format("model '{}'", file); }

  /// Names visible while importing one graph: its own, then its enclosing graphs'. A
  /// name found outside becomes a capture of this graph (see ir::Capture); `outer` holds
  /// the enclosing graph's value for each capture until the owning node lists it.
  struct Scope {
    ir::Graph *g;
    Scope *parent;
    std::vector<ir::Value *> outer;
    int depth() const { return parent ? parent->depth() + 1 : 0; }
  };

  ir::Value *resolve(Scope &s, const std::string &name);

  ir::Attribute convertAttr(const onnx::AttributeProto &a, const std::string &ctxName, Scope &scope,
                            std::vector<Scope> &subScopes);

  /// `scope`: a sequence item's name; its dim_params are its own (items differ in shape).
  sym::Expr dimExpr(const onnx::TensorShapeProto_Dimension &d, const std::string &input, int index,
                    std::string scope = "");

  /// A tensor graph input; its shape comes from --input-shape (`name`, else `seqName` for a
  /// sequence item) or the model.
  ir::Value *tensorInput(const std::string &name, const onnx::TypeProto_Tensor &tt, ir::Graph &g,
                         const std::string &seqName);

  /// The graph inputs for model input `name`. The C API passes tensors only, so a sequence
  /// of N items becomes inputs name.0 … name.N-1 and a node that builds `name` from them;
  /// an absent optional becomes an Optional node without inputs.
  void importInput(const std::string &name, const onnx::TypeProto &type, ir::Graph &g);

  /// A tensor whose static dims' byte size does not fit in int64 is refused here, before
  /// any size arithmetic can overflow.
  void checkStaticSize(const ir::Value &v, const std::string &what);

  /// Names reach the C API and generated code as C strings: a NUL byte would cut them short
  /// (the C API would report another name; a stopword would match less).
  void checkNoNul(const std::string &name, const std::string &what);

  /// Names are SSA: one definition per graph (ONNX IR spec).
  void checkNewName(const ir::Graph &g, const std::string &name, const std::string &what);

  void checkOutputType(const std::string &name, const onnx::TypeProto &t, bool inner);

  void importGraph(const onnx::GraphProto &gp, Scope &scope);

  /// Why `inName` has no definition before node `at`: a cycle, a self-loop, a later producer
  /// (nodes out of order) or none at all.
  [[noreturn]] void undefinedInput(const onnx::GraphProto &gp,
                                   const std::map<std::string, int> &producedAt, int at,
                                   const std::string &ctxName, const std::string &inName);

  void importConstant(const onnx::NodeProto &np, ir::Graph &g, const std::string &ctxName);
};

} // namespace kiln::frontend
