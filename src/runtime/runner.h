// A runner: everything one in-flight run owns exclusively (scratch arena, oneDNN cache,
// shape scratch). kiln_run_ctx.runner and the shim's ctx point at one of these.
#pragma once

#include "arena.h"
#include "device_plugin.h"
#include "dnnl_cache.h"

#include <kiln/model.h>
#include <kiln/model_desc.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace kiln::rt {

struct RegexCache; // shim_regex.cpp: compiled RegexFullMatch patterns per site

// Shape and pointer scratch for one run, sized once for the model so runs don't allocate.
struct RunScratch {
  std::vector<int64_t> symbols;
  std::vector<const int64_t *> inDims;
  std::vector<int32_t> inNdims;
  std::vector<int64_t> outDimStorage;
  std::vector<int64_t *> outDims;
  std::vector<void *> inData;
  std::vector<void *> outData;
  // CUDA models: host copies of the inputs bind_shapes_v2 reads (input_data_on_host).
  std::vector<std::vector<char>> hostInputs;
  std::vector<const void *> hostData;

  void init(const kiln_model_desc_v1 &desc);
};

struct Runner {
  static constexpr size_t kErrorSize = 1024;
  static constexpr int kConstantSlots = 3; // kiln_container::kSlots

  Runner() = default;
  Runner(const Runner &) = delete;
  Runner &operator=(const Runner &) = delete;
  ~Runner() {
    if (cuda) plugin->runner_destroy(cuda); // waits for the runner's work
  }

  // CUDA containers: the plugin's runner (stream, done event, device arena, libraries).
  const kiln_device_plugin_v1 *plugin = nullptr;
  void *cuda = nullptr;
  // Constant slots pinned by finished CUDA runs whose GPU work may still be running (see
  // kiln_container::reclaimPins); guarded by pinMu.
  std::mutex pinMu;
  int pendingPins[kConstantSlots] = {};

  Arena arena;
  DnnlCache dnnl;
  std::shared_ptr<RegexCache> regex; // created by the first regex shim call
  RunScratch scratch;
  char error[kErrorSize] = {};
  // Memory that stays constant while this runner lives: shims may cache derived copies of
  // weights that lie inside it (reordered conv weights). Anything else is treated as data.
  std::vector<std::pair<const char *, size_t>> constantRanges;
  // The container's constant set pinned by the current run, and the token of the set the
  // cached reordered weights were derived from (see Runner::useConstants).
  const char *pinnedBase = nullptr;
  size_t pinnedSize = 0;
  uint64_t weightsToken = 0;
  // Per-kernel profiling (profile.cpp): the container's callback for the current run (NULL:
  // off), the hooks the wrapper calls, and the start time of the site being timed.
  kiln_profile_fn profileFn = nullptr;
  void *profileUser = nullptr;
  kiln_profiler_v1 profiler{};
  uint64_t profileStartNs = 0;
  void startProfiling(kiln_profile_fn fn, void *user);

  // Called at the start of a container run: weights cached from another constant set (or
  // an older version of this one) are dropped, so a run never sees stale reordered weights.
  // `derived` is the set's store of derived weights, shared with the container's other
  // runners (null: a store of this runner's own, for runners outside a container).
  void useConstants(const char *base, size_t size, uint64_t token,
                    const std::shared_ptr<WeightStore> &derived = nullptr) {
    pinnedBase = base;
    pinnedSize = size;
    if (token != weightsToken) {
      dnnl.useStore(derived);
      weightsToken = token;
    }
  }

  bool isConstant(const void *p) const {
    const char *c = static_cast<const char *>(p);
    if (c >= pinnedBase && c < pinnedBase + pinnedSize) return true;
    for (const auto &[base, size] : constantRanges)
      if (c >= base && c < base + size) return true;
    return false;
  }
};

// The kiln_run_ctx.alloc callback: scratch from the runner's arena.
void *runnerAlloc(void *runner, size_t nbytes);
// The same for CUDA runs: device scratch from the plugin runner's arena.
void *cudaRunnerAlloc(void *runner, size_t nbytes);

} // namespace kiln::rt
