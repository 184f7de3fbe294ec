// Per-op coverage notes for `kiln ops` (docs/ops.md): element types where an op is
// narrower than ONNX allows, and how kiln runs it where that matters to a user.
#pragma once

#include <string>

namespace kiln::cli {

struct OpNote {
  std::string dtypes; // empty: every type the op allows (f16/bf16 computed in float32)
  std::string notes;
  std::string gpu; // empty: runs on CUDA like on the CPU; else how (or that it is refused)
};

/// The note for one op (empty fields when there is nothing to add).
OpNote opNote(const std::string &op);

} // namespace kiln::cli
