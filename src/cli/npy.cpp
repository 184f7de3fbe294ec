#include "cli/npy.h"

#include "support/error.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

namespace kiln::cli {

namespace {

struct Descr {
  const char *code;
  DLDataType t;
};
const Descr kDescrs[] = {
    {"f4", {kDLFloat, 32, 1}}, {"f8", {kDLFloat, 64, 1}}, {"f2", {kDLFloat, 16, 1}},
    {"i1", {kDLInt, 8, 1}},    {"i2", {kDLInt, 16, 1}},   {"i4", {kDLInt, 32, 1}},
    {"i8", {kDLInt, 64, 1}},   {"u1", {kDLUInt, 8, 1}},   {"u2", {kDLUInt, 16, 1}},
    {"u4", {kDLUInt, 32, 1}},  {"u8", {kDLUInt, 64, 1}},  {"b1", {6, 8, 1}},
};

std::vector<int64_t> readShape(const std::string &header, const std::string &path) {
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    fail("'{}': cannot read shape", path);
  std::string dims = m[1];
  std::vector<int64_t> shape;
  std::regex num("[0-9]+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator();
       ++it) {
    if (it->str().size() > 18) fail("'{}': dim {} is too large", path, it->str());
    shape.push_back(std::stoll(it->str()));
  }
  return shape;
}

/// The data's byte count for `shape`, checked against overflow and against the bytes the file
/// still holds, so nothing is allocated for a size the file cannot back.
size_t dataBytes(const std::vector<int64_t> &shape, int64_t elemBytes, int64_t remaining,
                 const std::string &path) {
  int64_t bytes = elemBytes;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(bytes, d, &bytes))
      fail("'{}': the shape's byte size overflows int64", path);
  if (bytes > remaining)
    fail("'{}': file is shorter than its shape needs ({} bytes, {} left)", path, bytes, remaining);
  return static_cast<size_t>(bytes);
}

int64_t bytesLeft(std::ifstream &in) {
  auto at = in.tellg();
  in.seekg(0, std::ios::end);
  auto end = in.tellg();
  in.seekg(at);
  return at < 0 || end < 0 ? 0 : static_cast<int64_t>(end - at);
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// 'S<n>' (bytes, NUL-padded) or 'U<n>' (UTF-32) elements as UTF-8 strings.
NpyArray readStrings(std::ifstream &in, const std::string &header, const std::string &path,
                     char kind, int64_t width) {
  NpyArray a;
  a.dtype = {kDLOpaqueHandle, 64, 1};
  a.shape = readShape(header, path);
  if (width > (1 << 20)) fail("'{}': string width {} is too large", path, width);
  size_t elem = static_cast<size_t>(width) * (kind == 'U' ? 4 : 1);
  if (elem == 0) fail("'{}': string width 0 is not supported", path);
  std::vector<char> raw(dataBytes(a.shape, static_cast<int64_t>(elem), bytesLeft(in), path));
  int64_t n = static_cast<int64_t>(raw.size() / elem);
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  if (!in) fail("'{}': file is shorter than its shape needs", path);
  for (int64_t i = 0; i < n; ++i) {
    const char *e = raw.data() + i * elem;
    std::string text;
    if (kind == 'S') {
      text.assign(e, strnlen(e, elem));
    } else {
      for (int64_t k = 0; k < width; ++k) {
        uint32_t cp;
        std::memcpy(&cp, e + 4 * k, 4);
        if (!cp) break;
        appendUtf8(text, cp);
      }
    }
    a.strings.push_back(std::move(text));
  }
  a.data.resize(static_cast<size_t>(n) * sizeof(const char *));
  for (int64_t i = 0; i < n; ++i) {
    const char *p = a.strings[i].c_str();
    std::memcpy(a.data.data() + i * sizeof p, &p, sizeof p);
  }
  return a;
}

} // namespace

std::string dtypeDescr(const DLDataType &t) {
  for (const Descr &d : kDescrs)
    if (d.t.code == t.code && d.t.bits == t.bits)
      return std::string(t.bits == 8 ? "|" : "<") + d.code;
  if (t.code == kDLBfloat) return "<u2"; // numpy has no bfloat16: raw bits
  // One element per byte (kiln's layout for sub-byte types): int4/int2 as int8 values,
  // uint4/uint2 as uint8 values; float8/float4 (DLPack codes 7-17) as uint8 raw codes.
  if (t.bits < 8 && t.code == kDLInt) return "|i1";
  if (t.bits < 8 && t.code == kDLUInt) return "|u1";
  if (t.code >= 7 && t.code <= 17 && t.bits <= 8) return "|u1";
  fail("dtype code {} bits {} has no .npy equivalent", t.code, t.bits);
}

NpyArray readNpy(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("'{}' is a directory, not a .npy file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail("'{}' is not a .npy file", path);
  if (magic[6] < 1 || magic[6] > 3)
    fail("'{}': .npy format version {} is not supported (1 to 3)", path, int(magic[6]));
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h;
    in.read(reinterpret_cast<char *>(&h), 2);
    hlen = h;
  } else {
    in.read(reinterpret_cast<char *>(&hlen), 4);
  }
  if (!in || hlen > bytesLeft(in))
    fail("'{}': the header runs past the end of the file (truncated .npy)", path);
  std::string header(hlen, '\0');
  in.read(header.data(), hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<>|=])([a-zA-Z][0-9]+)'")))
    fail("'{}': cannot read dtype from header {}", path, header);
  if (m[1] == ">") fail("'{}': big-endian arrays are not supported", path);
  NpyArray a;
  char kind = m[2].str()[0];
  if (kind == 'S' || kind == 'U') {
    std::string width = m[2].str().substr(1);
    if (width.size() > 9) fail("'{}': string width {} is too large", path, width);
    return readStrings(in, header, path, kind, std::stoll(width));
  }
  bool found = false;
  for (const Descr &d : kDescrs)
    if (m[2] == d.code) {
      a.dtype = d.t;
      found = true;
    }
  if (!found) fail("'{}': dtype '{}' is not supported", path, m[2].str());
  if (std::regex_search(header, m, std::regex("'fortran_order':\\s*True")))
    fail("'{}': Fortran-order arrays are not supported", path);
  a.shape = readShape(header, path);
  a.data.resize(dataBytes(a.shape, a.dtype.bits / 8, bytesLeft(in), path));
  in.read(reinterpret_cast<char *>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  if (!in) fail("'{}': file is shorter than its shape needs ({} bytes)", path, a.data.size());
  return a;
}

void writeNpy(const std::string &path, const DLDataType &dtype, const std::vector<int64_t> &shape,
              const void *data) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  std::vector<char> strBytes;
  std::string descr;
  if (dtype.code == kDLOpaqueHandle && dtype.bits == 64) {
    auto *strs = static_cast<const char *const *>(data);
    size_t width = 1;
    for (int64_t i = 0; i < count; ++i)
      width = std::max(width, std::strlen(strs[i] ? strs[i] : ""));
    strBytes.assign(static_cast<size_t>(count) * width, '\0');
    for (int64_t i = 0; i < count; ++i)
      if (strs[i]) std::memcpy(strBytes.data() + i * width, strs[i], std::strlen(strs[i]));
    descr = "|S" + std::to_string(width);
  } else {
    descr = dtypeDescr(dtype);
  }
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t hl = static_cast<uint16_t>(header.size());
  out.write(reinterpret_cast<const char *>(&hl), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  if (!strBytes.empty() || descr[1] == 'S')
    out.write(strBytes.data(), static_cast<std::streamsize>(strBytes.size()));
  else
    out.write(static_cast<const char *>(data),
              static_cast<std::streamsize>(n * ((dtype.bits + 7) / 8)));
  if (!out) fail("cannot write '{}'", path);
}

} // namespace kiln::cli
