// Per-runner oneDNN state: engine, stream, primitives keyed by (call site, shapes), and
// the runner's view of weights reordered into the layout a primitive prefers, keyed by
// (site, weight pointer). The reordered copies themselves live in a WeightStore shared by
// the runners of one constant set; this cache only memoises pointers into it. A runner is
// used by one run at a time, so nothing here is locked (the store locks itself).
#pragma once

#include "weight_store.h"

#include <dnnl.hpp>

#include <cstdint>
#include <memory>
#include <unordered_map>

namespace kiln::rt {

class DnnlCache {
public:
  dnnl::engine &engine();
  dnnl::stream &stream();

  // The entry for key, or nullptr.
  CacheEntry *find(const CacheKey &key) const;
  CacheEntry *insert(const CacheKey &key, std::unique_ptr<CacheEntry> entry);

  // A shim's per-runner scratch of type T (buffers it reuses across calls), created on first
  // use. Its key is `tag` alone, which no site key (site first, then more) can equal; each
  // shim picks a tag of its own. May throw std::bad_alloc.
  template <class T> T &scratch(int64_t tag) {
    CacheKey key;
    key.push(tag);
    if (CacheEntry *e = find(key)) return *static_cast<T *>(e);
    return *static_cast<T *>(insert(key, std::make_unique<T>()));
  }

  // Weights `w` (plain layout `plain`) in the layout `want`. When cacheable, the reordered
  // copy is kept in the store per (site, w, want) and shared with the other runners;
  // otherwise the reorder goes into `scratch` (owned by the caller's entry) on every call.
  dnnl::memory weights(int64_t site, const void *w, bool cacheable, const dnnl::memory::desc &plain,
                       const dnnl::memory::desc &want, dnnl::memory &scratch);

  // Weights a kiln kernel transformed itself (Winograd, depthwise packing), keyed like the
  // reordered weights, shared and dropped with them. insertDerived returns the stored entry,
  // which is another runner's when it stored one first: callers must use the returned
  // pointer. src/srcBytes name the constant it was derived from (optional; its file-backed
  // pages may then be released, see WeightStore).
  CacheEntry *findDerived(const CacheKey &key);
  CacheEntry *insertDerived(const CacheKey &key, std::unique_ptr<CacheEntry> entry,
                            const void *src = nullptr, size_t srcBytes = 0);
  // After insertDerived of an entry built from several constants: drops the file-backed
  // pages of each (WeightStore::releaseSource).
  void releaseSources(const float *const *srcs, const int64_t *floats, int32_t count) {
    for (int32_t i = 0; i < count; ++i)
      if (floats[i] > 0) ensureStore().releaseSource(srcs[i], sizeof(float) * floats[i]);
  }

  // Weights from now on go to `store` (a container run: the pinned constant set's) or, when
  // null, to a fresh store of this runner's own; the memo of the old one is dropped.
  void useStore(std::shared_ptr<WeightStore> store);
  // Drops cached weights (constants were updated in place): a fresh store of its own.
  void clearWeights() { useStore(nullptr); }
  const WeightStore &store() { return ensureStore(); }
  // The store itself, for helper caches that share it (the conv chain's per-thread lanes).
  std::shared_ptr<WeightStore> sharedStore() {
    ensureStore();
    return store_;
  }

  size_t numEntries() const { return entries_.size(); }
  // Weights this runner has looked up since the last useStore (reordered + derived).
  size_t numWeights() const { return weights_.size() + derived_.size(); }

private:
  struct WeightEntry {
    dnnl::memory::desc desc;
    dnnl::memory mem;
  };
  WeightStore &ensureStore();

  bool ready_ = false;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::unordered_map<CacheKey, std::unique_ptr<CacheEntry>, CacheKeyHash> entries_;
  std::shared_ptr<WeightStore> store_;
  // Memo of what this runner found in store_ (no lock on the hot path).
  std::unordered_map<CacheKey, WeightEntry, CacheKeyHash> weights_;
  std::unordered_map<CacheKey, CacheEntry *, CacheKeyHash> derived_;
};

} // namespace kiln::rt
