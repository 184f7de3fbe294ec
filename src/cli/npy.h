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
};

/// Throws UserError naming the file on anything it cannot read.
NpyArray readNpy(const std::string &path);
void writeNpy(const std::string &path, const DLDataType &dtype, const std::vector<int64_t> &shape,
              const void *data);
std::string dtypeDescr(const DLDataType &t);

} // namespace kiln::cli
