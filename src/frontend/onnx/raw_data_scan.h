// Parsing a serialized ModelProto without copying its weights: the main graph's initializers
// are parsed without their raw_data, whose place in the input is recorded instead, so the
// importer can view (or copy once) the bytes where they lie.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

namespace onnx {
class ModelProto;
class TensorProto;
} // namespace onnx

namespace kiln::frontend {

/// One initializer's raw_data, inside the serialized model.
struct RawDataSpan {
  const uint8_t *data = nullptr;
  size_t size = 0;
};

/// The raw_data the parse left out, by tensor. `owner` keeps the bytes valid after the import
/// (the file mapping); null when they are valid only during it (the importer copies them).
struct RawDataIndex {
  std::unordered_map<const onnx::TensorProto *, RawDataSpan> spans;
  std::shared_ptr<const void> owner;
  const RawDataSpan *find(const onnx::TensorProto &t) const {
    auto it = spans.find(&t);
    return it == spans.end() ? nullptr : &it->second;
  }
};

/// Parses `size` bytes at `data` into `model` exactly as protobuf would, except that the raw_data
/// of the main graph's initializers goes to `index` instead of the tensors. False (with `model`
/// and `index` cleared) where the input is not plain enough to scan (malformed, groups): the
/// caller then parses it the ordinary way, which also gives the verdict on a bad file.
bool parseModelSkippingRawData(const uint8_t *data, size_t size, int recursionLimit,
                               onnx::ModelProto &model, RawDataIndex &index);

} // namespace kiln::frontend
