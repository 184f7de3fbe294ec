// TensorProto → TensorData, including external data.
#pragma once

#include "ir/graph.h"

#include <onnx/onnx_pb.h>

namespace kiln::frontend {

/// `dir` is the model's directory; external data must resolve inside it.
std::shared_ptr<ir::TensorData> convertTensor(const onnx::TensorProto &t, const std::string &dir,
                                              const std::string &context);

} // namespace kiln::frontend
