// The container behind the opaque kiln_container handle: the model descriptor, constant
// sets, introspection arrays and a pool of runners that runs borrow one at a time.
#pragma once

#include "cpu_features.h"
#include "device.h"
#include "runner.h"

#include <kiln/model.h>
#include <kiln/model_desc.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace kiln::rt {

// One buffer of constants: pointer i is what generated code sees as constants[i]. It
// points into the embedded blob or the mapped weights file (read-only, not owned) or into
// `owned`, a 64-byte aligned copy made on the first write.
struct ConstantSet {
  std::vector<void *> ptrs;
  const char *base = nullptr; // the blob the pointers point into
  size_t size = 0;
  char *owned = nullptr; // == base when the set owns its memory
  // Changes whenever the contents change; runners drop weights derived from an older one.
  uint64_t token = 0;
  // Weights derived from these contents (packed/reordered/transformed), shared by every
  // runner of the container; replaced with the contents (contentsChanged).
  std::shared_ptr<kiln::rt::WeightStore> derived = std::make_shared<kiln::rt::WeightStore>();
  // Set for a CUDA container: ptrs, base and owned are device memory, freed through it.
  const DeviceState *device = nullptr;

  ConstantSet() = default;
  ConstantSet(const ConstantSet &) = delete;
  ConstantSet &operator=(const ConstantSet &) = delete;
  ~ConstantSet();

  // After writing new values: a new token, and an empty store for weights derived from them
  // (runners still holding the old store keep it alive until their next run drops it).
  void contentsChanged(uint64_t newToken) {
    token = newToken;
    derived = std::make_shared<WeightStore>();
  }
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

/// Whether [p, p + n) lies wholly in private, read-only mappings of files (the model.so's
/// embedded blob, a mapped weights file), whose pages can be dropped and fault back in
/// unchanged. False for heap or any writable memory (/proc/self/maps).
bool isReadOnlyFileMapping(const void *p, size_t n);

/// KILN_ERR_DEVICE (with a message naming the model's ISA, the missing extensions and this
/// CPU's level) when the model's host code needs ISA extensions a CPU with features `have`
/// lacks (cpu_check.cpp); KILN_OK for models that record none. `have` is this CPU's probe
/// except in tests.
int checkCpuFeatures(const kiln_model_desc_v1 &desc, cpu::FeatureMask have = cpu::probeThisCpu());

} // namespace kiln::rt

struct kiln_container {
  const kiln_model_desc_v1 *desc = nullptr;
  int32_t threadsPerRun = 1;
  // kiln_set_profiler (profile.cpp): copied into the runner at the start of each CPU run.
  kiln_profile_fn profileFn = nullptr;
  void *profileUser = nullptr;
  // CUDA containers only; declared first so it outlives the constants and runners using it.
  std::unique_ptr<kiln::rt::DeviceState> device;

  kiln::rt::MappedFile weightsFile;

  // Double-buffered constants in three slots: the active one (what runs read), the
  // inactive one (-1 when none) and a spare used to publish an active update atomically.
  // A run pins a slot: pins[s]++, then re-checks that s is still active (else unpins and
  // retries). Writers (serialised by constMu) change a slot only when it is not active and
  // its pin count is zero, so a pinned run sees one set, unchanged, from start to end.
  // A CUDA run keeps its pin after returning, as one of its runner's pendingPins, until its
  // done event has completed (reclaimPins), so device weights outlive the kernels reading them.
  static constexpr int kSlots = 3;
  std::unique_ptr<kiln::rt::ConstantSet> slots[kSlots];
  std::atomic<int> pins[kSlots] = {};
  std::atomic<int> activeSlot{0};
  int inactiveSlot = -1;  // guarded by constMu
  uint64_t nextToken = 1; // guarded by constMu
  std::mutex constMu;
  std::vector<const char *> nullDimNames; // kiln_constant_info's dim_names (all NULL)

  // Pins the active slot for one run; returns its index. Never blocks.
  int pinConstants();
  void unpinConstants(int slot, int n = 1) { pins[slot].fetch_sub(n, std::memory_order_release); }
  // Waits until no run pins slot (which must not be active). Only writers wait; for CUDA
  // they block on the done events of runners whose finished runs still pin it.
  void drain(int slot);
  // CUDA: drops r's pending pins once its work has completed (waiting for it when wait).
  void reclaimPins(kiln::rt::Runner *r, bool wait);

  std::vector<kiln::rt::TensorInfoArrays> inputInfo, outputInfo;

  std::vector<std::unique_ptr<kiln::rt::Runner>> runners;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<kiln::rt::Runner *> freeRunners;

  // Blocks until a runner is free; never fails.
  kiln::rt::Runner *acquire();
  void release(kiln::rt::Runner *r);
};
