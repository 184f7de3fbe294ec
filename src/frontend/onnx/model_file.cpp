// Reading ONNX files: the model (mapped, parsed, handed to the importer) and single
// TensorProto files (test data).
#include "frontend/onnx/importer.h"

#include "frontend/onnx/raw_data_scan.h"
#include "frontend/onnx/tensor_proto.h"
#include "support/error.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>
#include <sstream>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kiln::frontend {

namespace {

// Protobuf's recursion limit, raised from 100 (the importer refuses subgraphs nested deeper
// than 32 by name, well below this).
constexpr int kProtobufRecursionLimit = 1000;
// Protobuf cannot represent a message of 2 GiB or more.
constexpr int64_t kMaxProtobufBytes = (int64_t{1} << 31) - 1;

/// Parses a serialized ModelProto; the main graph's initializers' raw_data is left where it
/// lies and listed in `raw` (raw_data_scan.h), so `data` must outlive the import.
void parseModel(const uint8_t *data, size_t size, const std::string &displayName,
                onnx::ModelProto &model, RawDataIndex &raw) {
  if (size == 0) fail("'{}' is empty, not an ONNX model", displayName);
  if (static_cast<int64_t>(size) > kMaxProtobufBytes)
    fail("'{}' is {} bytes; an ONNX protobuf file must be smaller than 2 GiB (store large "
         "weights as external data)",
         displayName, size);
  if (parseModelSkippingRawData(data, size, kProtobufRecursionLimit, model, raw)) return;
  // Not plain enough to scan: protobuf parses it (copying the weights) or says it is bad.
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  in.SetRecursionLimit(kProtobufRecursionLimit);
  if (!model.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    fail("'{}' is not a valid ONNX model (protobuf parse failed: the file is truncated or "
         "corrupt, or its messages are nested more than {} levels deep)",
         displayName, kProtobufRecursionLimit);
}

} // namespace

std::unique_ptr<ir::Graph> importModelBytes(const std::string &bytes, const std::string &dir,
                                            const std::string &displayName, sym::Context &ctx,
                                            const ImportOptions &opts) {
  onnx::ModelProto model;
  RawDataIndex raw; // no owner: the tensors copy their bytes out of `bytes`
  parseModel(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), displayName, model,
             raw);
  return importParsedModel(model, dir, displayName, ctx, opts, &raw);
}

std::unique_ptr<ir::Graph> importModel(const std::string &path, sym::Context &ctx,
                                       const ImportOptions &opts) {
  // The file is mapped, not read: the initializers' bytes stay in the mapping, which the
  // graph's tensors view (ir::ByteBuffer) and keep alive, so the weights are never copied
  // into fresh memory on their way to the output.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open model file '{}': {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("model file '{}' is not a regular file", path);
  }
  size_t size = static_cast<size_t>(st.st_size); // parseModel refuses 0 and >= 2 GiB
  onnx::ModelProto model;
  RawDataIndex raw;
  if (size > 0 && static_cast<int64_t>(size) <= kMaxProtobufBytes) {
    void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) fail("cannot map model file '{}': {}", path, std::strerror(errno));
    raw.owner = std::shared_ptr<const void>(
        map, [size](const void *p) { ::munmap(const_cast<void *>(p), size); });
    parseModel(static_cast<const uint8_t *>(map), size, path, model, raw);
  } else {
    ::close(fd);
    parseModel(nullptr, size, path, model, raw);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return importParsedModel(model, dir, path, ctx, opts, &raw);
}

std::shared_ptr<ir::TensorData> readTensorProtoFile(const std::string &path, std::string *name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open tensor file '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  onnx::TensorProto t;
  if (!t.ParseFromString(ss.str())) fail("'{}' is not a TensorProto", path);
  if (name) *name = t.name();
  return convertTensor(t, std::filesystem::path(path).parent_path().string(), path);
}

} // namespace kiln::frontend
