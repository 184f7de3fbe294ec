#include "frontend/onnx/tensor_proto.h"

#include "loop/interp.h"
#include "support/error.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::frontend {

namespace fs = std::filesystem;

static void readExternal(const onnx::TensorProto &t, const std::string &dir,
                         const std::string &context, ir::TensorData &out) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::stoll(kv.value());
    else if (kv.key() == "length")
      length = std::stoll(kv.value());
  }
  if (location.empty())
    fail("{}: tensor '{}' has external data without a location", context, t.name());
  fs::path base = fs::weakly_canonical(fs::path(dir.empty() ? "." : dir));
  fs::path file = fs::weakly_canonical(base / location);
  auto rel = file.lexically_relative(base);
  if (fs::path(location).is_absolute() || rel.empty() || *rel.begin() == "..")
    fail("{}: tensor '{}' external data path '{}' leaves the model directory {}", context, t.name(),
         location, base.string());
  std::ifstream in(file, std::ios::binary);
  if (!in)
    fail("{}: tensor '{}' external data file '{}' cannot be opened", context, t.name(),
         file.string());
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  if (length < 0) length = size - offset;
  if (offset < 0 || offset + length > size)
    fail("{}: tensor '{}' external data [{}, {}) exceeds file '{}' of {} bytes", context, t.name(),
         offset, offset + length, file.string(), size);
  out.bytes.resize(static_cast<size_t>(length));
  in.seekg(offset);
  in.read(reinterpret_cast<char *>(out.bytes.data()), length);
}

std::shared_ptr<ir::TensorData> convertTensor(const onnx::TensorProto &t, const std::string &dir,
                                              const std::string &context) {
  auto out = std::make_shared<ir::TensorData>();
  if (!dtypeFromOnnx(t.data_type(), out->dtype))
    fail("{}: tensor '{}' has element type {}, which kiln does not support", context, t.name(),
         onnxTypeName(t.data_type()));
  for (int64_t d : t.dims()) {
    if (d < 0) fail("{}: tensor '{}' has negative dim {}", context, t.name(), d);
    out->dims.push_back(d);
  }
  int64_t n = out->numel();
  DType dt = out->dtype;
  if (dt == DType::String) {
    for (const auto &s : t.string_data())
      out->strings.push_back(s);
    if (static_cast<int64_t>(out->strings.size()) != n)
      fail("{}: string tensor '{}' has {} values for {} elements", context, t.name(),
           out->strings.size(), n);
    out->bytes.resize(static_cast<size_t>(n) * 8);
    return out;
  }
  size_t nbytes = static_cast<size_t>(n) * dtypeSize(dt);
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    readExternal(t, dir, context, *out);
  } else if (t.has_raw_data()) {
    out->bytes.assign(t.raw_data().begin(), t.raw_data().end());
  } else {
    out->bytes.resize(nbytes);
    auto check = [&](int64_t have) {
      if (have != n)
        fail("{}: tensor '{}' has {} values for {} elements", context, t.name(), have, n);
    };
    switch (dt) {
    case DType::Float32:
      check(t.float_data_size());
      std::memcpy(out->bytes.data(), t.float_data().data(), nbytes);
      break;
    case DType::Float64:
      check(t.double_data_size());
      std::memcpy(out->bytes.data(), t.double_data().data(), nbytes);
      break;
    case DType::Int64:
      check(t.int64_data_size());
      std::memcpy(out->bytes.data(), t.int64_data().data(), nbytes);
      break;
    case DType::UInt32:
    case DType::UInt64:
      check(t.uint64_data_size());
      for (int64_t i = 0; i < n; ++i)
        loop::storeScalar(*out, i, 0, static_cast<int64_t>(t.uint64_data(i)));
      break;
    case DType::Float16:
    case DType::BFloat16:
      check(t.int32_data_size());
      for (int64_t i = 0; i < n; ++i)
        out->as<uint16_t>()[i] = static_cast<uint16_t>(t.int32_data(i));
      break;
    default: // int32 and narrower, bool
      check(t.int32_data_size());
      for (int64_t i = 0; i < n; ++i)
        loop::storeScalar(*out, i, 0, t.int32_data(i));
      break;
    }
  }
  if (out->bytes.size() != nbytes)
    fail("{}: tensor '{}' holds {} bytes but its dims need {}", context, t.name(),
         out->bytes.size(), nbytes);
  return out;
}

} // namespace kiln::frontend
