// TensorProto → TensorData, including external data.
#pragma once

#include "frontend/onnx/raw_data_scan.h"
#include "ir/graph.h"

#include <onnx/onnx_pb.h>

namespace kiln::frontend {

/// `dir` is the model's directory; external data must resolve inside it. `raw`: raw_data the
/// parse left out (raw_data_scan.h); the tensor views it where its owner keeps it valid.
std::shared_ptr<ir::TensorData> convertTensor(const onnx::TensorProto &t, const std::string &dir,
                                              const std::string &context,
                                              const RawDataIndex *raw = nullptr);

} // namespace kiln::frontend
