#include "cli/npy.h"

#include "support/error.h"

#include <cstring>
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

} // namespace

std::string dtypeDescr(const DLDataType &t) {
  for (const Descr &d : kDescrs)
    if (d.t.code == t.code && d.t.bits == t.bits)
      return std::string(t.bits == 8 ? "|" : "<") + d.code;
  if (t.code == kDLBfloat) return "<u2"; // numpy has no bfloat16: raw bits
  fail("dtype code {} bits {} has no .npy equivalent", t.code, t.bits);
}

NpyArray readNpy(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) fail("'{}' is not a .npy file", path);
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h;
    in.read(reinterpret_cast<char *>(&h), 2);
    hlen = h;
  } else {
    in.read(reinterpret_cast<char *>(&hlen), 4);
  }
  std::string header(hlen, '\0');
  in.read(header.data(), hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<>|=])([a-z][0-9]+)'")))
    fail("'{}': cannot read dtype from header {}", path, header);
  if (m[1] == ">") fail("'{}': big-endian arrays are not supported", path);
  NpyArray a;
  bool found = false;
  for (const Descr &d : kDescrs)
    if (m[2] == d.code) {
      a.dtype = d.t;
      found = true;
    }
  if (!found) fail("'{}': dtype '{}' is not supported", path, m[2].str());
  if (std::regex_search(header, m, std::regex("'fortran_order':\\s*True")))
    fail("'{}': Fortran-order arrays are not supported", path);
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    fail("'{}': cannot read shape", path);
  std::string dims = m[1];
  std::regex num("[0-9]+");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator();
       ++it)
    a.shape.push_back(std::stoll(it->str()));
  int64_t n = 1;
  for (int64_t d : a.shape)
    n *= d;
  a.data.resize(static_cast<size_t>(n) * (a.dtype.bits / 8));
  in.read(reinterpret_cast<char *>(a.data.data()), static_cast<std::streamsize>(a.data.size()));
  if (!in) fail("'{}': file is shorter than its shape needs ({} bytes)", path, a.data.size());
  return a;
}

void writeNpy(const std::string &path, const DLDataType &dtype, const std::vector<int64_t> &shape,
              const void *data) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i)
    dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  std::string header =
      "{'descr': '" + dtypeDescr(dtype) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
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
  out.write(static_cast<const char *>(data),
            static_cast<std::streamsize>(n * ((dtype.bits + 7) / 8)));
  if (!out) fail("cannot write '{}'", path);
}

} // namespace kiln::cli
