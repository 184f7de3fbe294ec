// Reading and writing NumPy .npy files (format 1.0–3.0, C order, little-endian).
#pragma once

#include <cstdint>
#include <dlpack/dlpack.h>
#include <string>
#include <vector>

namespace kiln::cli {

struct NpyArray {
  DLDataType dtype{};
  std::vector<int64_t> shape;
  std::vector<uint8_t> data; // 64-byte aligned copy is made by the caller when needed
  // String arrays (.npy 'S' or 'U'): the text; `data` holds one `const char *` per element
  // into it (kiln's string tensors: kDLOpaqueHandle, 64 bits).
  std::vector<std::string> strings;
};

/// Throws UserError naming the file on anything it cannot read.
NpyArray readNpy(const std::string &path);
/// Writes a .npy; string tensors (data = `const char *` per element) as bytes ('|S<n>').
void writeNpy(const std::string &path, const DLDataType &dtype, const std::vector<int64_t> &shape,
              const void *data);
/// The .npy descr of a dtype; types numpy lacks travel as their stored bytes: bfloat16 as
/// uint16 bits, float8/float4 as uint8 codes, int4/int2 (uint4/uint2) as int8 (uint8) values.
std::string dtypeDescr(const DLDataType &t);

} // namespace kiln::cli
