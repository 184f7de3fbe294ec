// Weights derived from one constant set (oneDNN-reordered, Winograd-transformed, packed for
// the depthwise kernel), shared by every runner that runs on that set: one packed copy per
// constants generation, not one per runner.
//
// Entries are immutable once inserted and live as long as the store; a store lives as long
// as its constant set's contents (ConstantSet::contentsChanged replaces it) and any runner
// still holding it (DnnlCache keeps a shared_ptr), so a run never reads a freed copy.
#pragma once

#include <dnnl.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace kiln::rt {

// A fixed-capacity key (no allocation per lookup).
struct CacheKey {
  static constexpr int kCapacity = 48;
  std::array<int64_t, kCapacity> v{};
  int n = 0;

  void push(int64_t x) {
    // Callers push bounded counts; overflow would be a kiln bug.
    if (n < kCapacity) v[n++] = x;
  }
  void pushFloat(float f) {
    int32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    push(bits);
  }
  bool operator==(const CacheKey &o) const {
    return n == o.n && std::memcmp(v.data(), o.v.data(), sizeof(int64_t) * n) == 0;
  }
};

struct CacheKeyHash {
  size_t operator()(const CacheKey &k) const {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < k.n; ++i)
      h = (h ^ static_cast<uint64_t>(k.v[i])) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// Base of what a shim stores per (site, shape) or per derived weight.
struct CacheEntry {
  virtual ~CacheEntry() = default;
};

class WeightStore {
public:
  WeightStore() = default;
  WeightStore(const WeightStore &) = delete;
  WeightStore &operator=(const WeightStore &) = delete;

  // The constants the store's weights are derived from, when they are pages of a read-only
  // file mapping (the model.so's embedded blob or a mapped weights file): once a derived
  // copy of a constant exists, its source pages are dropped from the process (they fault
  // back in from the file if anything reads them again). Anonymous memory is never dropped.
  // The mapping is also advised off huge pages: a read of a small constant read in place (a
  // bias, a LayerNorm scale) beside released ones would otherwise map its whole 2 MiB folio
  // back (BERT-base: 37 MB of released weights resident again).
  void setFileBackedSource(const char *base, size_t size);

  // Drops every page of the file-backed source (after its contents were copied into an
  // owned set, which reads them all back in). No-op when the source is not file-backed.
  void releaseAllSource() { releaseSource(fileBase_, fileSize_); }

  // Derived weights (Winograd, depthwise packing, a new shim's own layout): the entry for
  // key, or nullptr. Thread-safe.
  CacheEntry *find(const CacheKey &key) const;
  // Stores entry under key unless another runner stored one first; returns the stored entry
  // (callers must use it, not their own). src/srcBytes: the constant the entry was derived
  // from, whose file-backed pages may then be dropped (nullptr: none).
  CacheEntry *insert(const CacheKey &key, std::unique_ptr<CacheEntry> entry,
                     const void *src = nullptr, size_t srcBytes = 0);

  // Weights reordered by oneDNN into layout `want`; a null memory when there is none yet.
  dnnl::memory findReordered(const CacheKey &key, const dnnl::memory::desc &want) const;
  // Stores mem (the reorder of src into `want`, in the buffer `owner` keeps alive) unless one
  // exists; returns the stored one.
  dnnl::memory insertReordered(const CacheKey &key, const dnnl::memory::desc &want,
                               const dnnl::memory &mem, std::shared_ptr<void> owner,
                               const void *src, size_t srcBytes);

  // Drops the file-backed pages of a constant a stored entry was derived from, for entries
  // built from several constants (insert names one). No-op outside the mapping.
  void releaseSource(const void *src, size_t bytes);

  // Diagnostics for tests: entries held (derived + reordered) and how many were built
  // (inserts attempted: more than size() only when runners raced on the same weight).
  size_t size() const;
  uint64_t builds() const { return builds_.load(std::memory_order_relaxed); }
  // Bytes of source constants whose pages were dropped.
  uint64_t releasedBytes() const { return released_.load(std::memory_order_relaxed); }

private:
  struct Reordered {
    dnnl::memory::desc desc;
    dnnl::memory mem;
    std::shared_ptr<void> owner; // mem's buffer (weight_memory.h)
  };

  mutable std::mutex mu_;
  std::unordered_map<CacheKey, std::unique_ptr<CacheEntry>, CacheKeyHash> derived_;
  // Per key every layout asked for (dynamic shapes may make oneDNN pick another); never
  // replaced, so a copy another runner is reading stays valid.
  std::unordered_map<CacheKey, std::vector<Reordered>, CacheKeyHash> reordered_;
  const char *fileBase_ = nullptr;
  size_t fileSize_ = 0;
  std::atomic<uint64_t> builds_{0};
  std::atomic<uint64_t> released_{0};
};

// Whether dropping the source pages of packed constants is on (KILN_RELEASE_WEIGHT_PAGES=0
// turns it off, for comparisons).
bool releaseWeightPagesEnabled();

} // namespace kiln::rt
