// The container behind the opaque kiln_container handle: the model descriptor, constant
// sets, introspection arrays and a pool of runners that runs borrow one at a time.
#pragma once

#include "runner.h"

#include <kiln/model.h>
#include <kiln/model_desc.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace kiln::rt {

// One buffer of constants: pointer i is what generated code sees as constants[i]. Kept as
// a set so a second (inactive) set can be added for double-buffered updates.
struct ConstantSet {
  std::vector<void *> ptrs;
  const char *base = nullptr; // the blob the pointers point into
  size_t size = 0;
};

// Per-tensor arrays kiln_tensor_info points at; built once at create.
struct TensorInfoArrays {
  std::vector<const char *> dimNames;
  std::vector<int64_t> dimMin, dimMax;
};

// A read-only mapping of an external weights file.
struct MappedFile {
  void *data = nullptr;
  size_t size = 0;
  MappedFile() = default;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();
};

// Fills set from the embedded blob or, when weightsPath is set, from a mapping of that
// file (kept alive in file). Returns a kiln_status with the error message recorded.
int loadConstants(const kiln_model_desc_v1 &desc, const char *weightsPath, MappedFile &file,
                  ConstantSet &set);

} // namespace kiln::rt

struct kiln_container {
  const kiln_model_desc_v1 *desc = nullptr;
  int32_t threadsPerRun = 1;

  kiln::rt::MappedFile weightsFile;
  std::vector<kiln::rt::ConstantSet> constantSets;
  int activeSet = 0;

  std::vector<kiln::rt::TensorInfoArrays> inputInfo, outputInfo;

  std::vector<std::unique_ptr<kiln::rt::Runner>> runners;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<kiln::rt::Runner *> freeRunners;

  // Blocks until a runner is free; never fails.
  kiln::rt::Runner *acquire();
  void release(kiln::rt::Runner *r);
};
