// ONNX protobuf → graph IR. Reads initializers (including external data confined to the
// model's directory), turns dim_params into shared symbols, and applies --dynamic.
#pragma once

#include "ir/graph.h"

#include <map>
#include <memory>
#include <string>

namespace onnx {
class ModelProto;
}

namespace kiln::frontend {

struct RawDataIndex;

struct DynamicDim {
  int64_t min = 1, max = INT32_MAX;
};

struct ImportOptions {
  /// dim_param name → range; names must exist in the model.
  std::map<std::string, DynamicDim> dynamic;
  /// Make every input dim a fresh symbol (exercises run-time shape logic).
  bool allInputDimsDynamic = false;
  /// Sequence-typed graph input → its length N; its items become tensor inputs
  /// `<name>.0` … `<name>.<N-1>` (the C API passes tensors only).
  std::map<std::string, int64_t> sequenceLengths;
  /// Optional-typed graph input → present (a tensor or sequence input, the default) or absent
  /// (no input; OptionalHasElement folds to false).
  std::map<std::string, bool> optionalPresent;
  /// Input → shape replacing the model's (each dim an integer or a dim_param-like name; none
  /// for a scalar). Sequence items take `<name>.K`, else `<name>` for every item.
  std::map<std::string, std::vector<std::string>> inputShapes;
};

/// Reads `path`; throws UserError naming the file (and node/op/opset) on any problem.
std::unique_ptr<ir::Graph> importModel(const std::string &path, sym::Context &ctx,
                                       const ImportOptions &opts);
/// Same, from bytes already in memory (tests).
std::unique_ptr<ir::Graph> importModelBytes(const std::string &bytes, const std::string &dir,
                                            const std::string &displayName, sym::Context &ctx,
                                            const ImportOptions &opts);

/// The import proper, after parsing (model_file.cpp reads and parses); frees each
/// initializer's protobuf bytes once the graph holds them, so it takes `model` mutable.
/// `raw`: the initializers' raw_data the parse left out (raw_data_scan.h).
std::unique_ptr<ir::Graph> importParsedModel(onnx::ModelProto &model, const std::string &dir,
                                             const std::string &displayName, sym::Context &ctx,
                                             const ImportOptions &opts,
                                             const RawDataIndex *raw = nullptr);

/// Parses a serialized TensorProto (test data files).
std::shared_ptr<ir::TensorData> readTensorProtoFile(const std::string &path, std::string *name);

} // namespace kiln::frontend
