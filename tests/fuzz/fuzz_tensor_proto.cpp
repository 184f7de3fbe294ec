// Fuzz target 4b: TensorProto bytes → convertTensor (typed, raw and external data). The model
// directory holds one 64-byte file `w.bin` (written once), so external data can resolve,
// run past its end, or try to leave the directory.
#include "frontend/onnx/tensor_proto.h"
#include "support/error.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace kiln;

static std::string modelDir() {
  static const std::string dir = [] {
    std::string d =
        std::filesystem::temp_directory_path() / ("kiln-fuzz-tp-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    std::ofstream(d + "/w.bin", std::ios::binary) << std::string(64, '\x01');
    return d;
  }();
  return dir;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  onnx::TensorProto t;
  if (!t.ParseFromArray(data, static_cast<int>(size))) return 0;
  try {
    auto td = frontend::convertTensor(t, modelDir(), "fuzz");
    if (td->dtype != DType::String &&
        td->bytes.size() != static_cast<size_t>(td->numel()) * dtypeSize(td->dtype))
      std::abort(); // convertTensor promises bytes that match the dims
  } catch (const UserError &) {
  }
  return 0;
}
