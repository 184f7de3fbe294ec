#include "frontend/onnx/tensor_proto.h"

#include "kiln/prelude.h"
#include "loop/interp.h"
#include "support/error.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln::frontend {

namespace fs = std::filesystem;

/// A non-negative decimal external-data field; anything else is the model's error.
static int64_t externalNumber(const onnx::TensorProto &t, const std::string &key,
                              const std::string &text, const std::string &context) {
  int64_t v = 0;
  bool ok = !text.empty() && text.size() <= 18 &&
            text.find_first_not_of("0123456789") == std::string::npos;
  if (ok) v = std::stoll(text);
  if (!ok)
    fail("{}: tensor '{}' external data {} '{}' is not a non-negative integer below 10^18", context,
         t.name(), key, text);
  return v;
}

static void readExternal(const onnx::TensorProto &t, const std::string &dir,
                         const std::string &context, size_t nbytes, ir::TensorData &out) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = externalNumber(t, "offset", kv.value(), context);
    else if (kv.key() == "length")
      length = externalNumber(t, "length", kv.value(), context);
  }
  if (location.empty())
    fail("{}: tensor '{}' has external data without a location", context, t.name());
  if (location.find('\0') != std::string::npos)
    fail("{}: tensor '{}' external data path contains a NUL byte", context, t.name());
  if (fs::path(location).is_absolute())
    fail("{}: tensor '{}' external data path '{}' is absolute; it must be relative to the model "
         "directory",
         context, t.name(), location);
  // Resolving symlinks first means a link inside the directory that points out of it is refused.
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(dir.empty() ? "." : dir), ec);
  fs::path file = ec ? fs::path() : fs::weakly_canonical(base / location, ec);
  auto rel = file.lexically_relative(base);
  if (ec || rel.empty() || *rel.begin() == ".." || rel == ".")
    fail("{}: tensor '{}' external data path '{}' leaves the model directory {}", context, t.name(),
         location, base.string());
  if (length >= 0 && static_cast<size_t>(length) != nbytes)
    fail("{}: tensor '{}' external data length {} does not match its dims, which need {} bytes",
         context, t.name(), length, nbytes);
  std::ifstream in(file, std::ios::binary);
  if (!in)
    fail("{}: tensor '{}' external data file '{}' cannot be opened", context, t.name(),
         file.string());
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  if (size < 0 || fs::is_directory(file))
    fail("{}: tensor '{}' external data '{}' is not a regular file", context, t.name(),
         file.string());
  if (length < 0) length = std::max<int64_t>(0, size - offset);
  if (offset > size || length > size - offset)
    fail("{}: tensor '{}' external data [{}, {}) exceeds file '{}' of {} bytes", context, t.name(),
         offset, offset + length, file.string(), size);
  out.bytes.resize(static_cast<size_t>(length));
  in.seekg(offset);
  in.read(reinterpret_cast<char *>(out.bytes.data()), length);
  if (!in)
    fail("{}: tensor '{}' external data file '{}' could not be read", context, t.name(),
         file.string());
}

/// int4/uint4/float4e2m1 (two per byte) and int2/uint2 (four per byte), low bits first, in
/// raw_data, external data or int32_data (one packed byte per entry) → one element per byte:
/// integers sign- or zero-extended, float4 as its 4-bit code.
static void unpackSubByte(const onnx::TensorProto &t, const std::string &dir,
                          const std::string &context, const RawDataSpan *span, int64_t n,
                          ir::TensorData &out) {
  const int bits = dtypeBits(out.dtype), perByte = 8 / bits;
  const size_t packedBytes = static_cast<size_t>((n + perByte - 1) / perByte);
  std::vector<uint8_t> packed;
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    readExternal(t, dir, context, packedBytes, out);
    packed.swap(out.bytes.vector());
  } else if (span) {
    packed.assign(span->data, span->data + span->size);
  } else if (t.has_raw_data()) {
    const auto *raw = reinterpret_cast<const uint8_t *>(t.raw_data().data());
    packed.assign(raw, raw + t.raw_data().size()); // one memmove, as convertTensor's
  } else {
    for (int32_t v : t.int32_data())
      packed.push_back(static_cast<uint8_t>(v));
  }
  if (packed.size() != packedBytes)
    fail("{}: tensor '{}' of {} {} elements holds {} packed bytes; {} packs {} per byte, so it "
         "needs {}",
         context, t.name(), n, dtypeName(out.dtype), packed.size(), dtypeName(out.dtype), perByte,
         packedBytes);
  out.bytes.resize(static_cast<size_t>(n));
  const unsigned mask = (1u << bits) - 1;
  for (int64_t i = 0; i < n; ++i) {
    unsigned code = (packed[static_cast<size_t>(i / perByte)] >> (bits * (i % perByte))) & mask;
    out.bytes[static_cast<size_t>(i)] =
        isSigned(out.dtype) ? static_cast<uint8_t>(kiln_wrap_bits<int8_t>(code, bits, true))
                            : static_cast<uint8_t>(code);
  }
}

std::shared_ptr<ir::TensorData> convertTensor(const onnx::TensorProto &t, const std::string &dir,
                                              const std::string &context, const RawDataIndex *raw) {
  const RawDataSpan *span = raw ? raw->find(t) : nullptr;
  auto out = std::make_shared<ir::TensorData>();
  if (!dtypeFromOnnx(t.data_type(), out->dtype))
    fail("{}: tensor '{}' has element type {}, which kiln does not support", context, t.name(),
         onnxTypeName(t.data_type()));
  // Element and byte counts are checked before anything is sized by them.
  int64_t n = 1, maxBytes = int64_t{1} << 62;
  DType dt = out->dtype;
  int64_t elemBytes = dt == DType::String ? 8 : static_cast<int64_t>(dtypeSize(dt));
  for (int64_t d : t.dims()) {
    if (d < 0) fail("{}: tensor '{}' has negative dim {}", context, t.name(), d);
    out->dims.push_back(d);
    if (__builtin_mul_overflow(n, d, &n) || (d && n > maxBytes / elemBytes))
      fail("{}: tensor '{}' has dims whose element count or byte size overflows int64", context,
           t.name());
  }
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
  if (dtypeBits(dt) < 8) { // ONNX packs sub-byte types; kiln holds one element per byte
    unpackSubByte(t, dir, context, span, n, *out);
    return out;
  }
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    readExternal(t, dir, context, nbytes, *out);
  } else if (span && raw->owner) {
    out->bytes = ir::ByteBuffer::view(raw->owner, span->data, span->size); // no copy
  } else if (span) {
    out->bytes.assign(span->data, span->data + span->size);
  } else if (t.has_raw_data()) {
    // Same-type pointers make this one memmove (string iterators copied byte by byte).
    const auto *raw = reinterpret_cast<const uint8_t *>(t.raw_data().data());
    out->bytes.assign(raw, raw + t.raw_data().size());
  } else {
    auto check = [&](int64_t have) {
      if (have != n)
        fail("{}: tensor '{}' has {} values for {} elements", context, t.name(), have, n);
    };
    // The typed field's count must match before anything is sized by the dims.
    int64_t have = dt == DType::Float32                         ? t.float_data_size()
                   : dt == DType::Float64                       ? t.double_data_size()
                   : dt == DType::Int64                         ? t.int64_data_size()
                   : dt == DType::UInt32 || dt == DType::UInt64 ? t.uint64_data_size()
                                                                : t.int32_data_size();
    check(have);
    out->bytes.resize(nbytes);
    switch (dt) {
    case DType::Float32:
      check(t.float_data_size());
      if (nbytes) std::memcpy(out->bytes.data(), t.float_data().data(), nbytes); // empty: no data()
      break;
    case DType::Float64:
      check(t.double_data_size());
      if (nbytes)
        std::memcpy(out->bytes.data(), t.double_data().data(), nbytes); // empty: no data()
      break;
    case DType::Int64:
      check(t.int64_data_size());
      if (nbytes) std::memcpy(out->bytes.data(), t.int64_data().data(), nbytes); // empty: no data()
      break;
    case DType::UInt32:
    case DType::UInt64:
      check(t.uint64_data_size());
      for (int64_t i = 0; i < n; ++i)
        loop::storeScalar(*out, i, 0, static_cast<int64_t>(t.uint64_data(i)));
      break;
    case DType::Float8E4M3FN: // int32_data holds each element's bits
    case DType::Float8E4M3FNUZ:
    case DType::Float8E5M2:
    case DType::Float8E5M2FNUZ:
    case DType::Float8E8M0:
      for (int64_t i = 0; i < n; ++i)
        out->as<uint8_t>()[i] = static_cast<uint8_t>(t.int32_data(i));
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
