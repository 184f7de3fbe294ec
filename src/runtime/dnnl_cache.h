// Per-runner oneDNN state: engine, stream, primitives keyed by (call site, shapes), and
// weights reordered into the layout a primitive prefers, keyed by (site, weight pointer).
// A runner is used by one run at a time, so nothing here is locked.
#pragma once

#include <dnnl.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_map>

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

// Base of what a shim stores per (site, shape).
struct CacheEntry {
  virtual ~CacheEntry() = default;
};

class DnnlCache {
public:
  dnnl::engine &engine();
  dnnl::stream &stream();

  // The entry for key, or nullptr.
  CacheEntry *find(const CacheKey &key) const;
  CacheEntry *insert(const CacheKey &key, std::unique_ptr<CacheEntry> entry);

  // Weights `w` (plain layout `plain`) in the layout `want`. When cacheable, the reordered
  // copy is kept per (site, w) and reused while `want` stays the same; otherwise the
  // reorder goes into `scratch` (owned by the caller's entry) on every call.
  dnnl::memory weights(int64_t site, const void *w, bool cacheable, const dnnl::memory::desc &plain,
                       const dnnl::memory::desc &want, dnnl::memory &scratch);

  // Weights a kiln kernel transformed itself (Winograd, depthwise packing), keyed like the
  // reordered weights and dropped with them.
  CacheEntry *findDerived(const CacheKey &key) const;
  CacheEntry *insertDerived(const CacheKey &key, std::unique_ptr<CacheEntry> entry);

  // Drops cached weights (constants were updated in place).
  void clearWeights() {
    weights_.clear();
    derived_.clear();
  }

  size_t numEntries() const { return entries_.size(); }
  size_t numWeights() const { return weights_.size() + derived_.size(); }

private:
  struct WeightEntry {
    dnnl::memory::desc desc;
    dnnl::memory mem;
  };
  bool ready_ = false;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::unordered_map<CacheKey, std::unique_ptr<CacheEntry>, CacheKeyHash> entries_;
  std::unordered_map<CacheKey, WeightEntry, CacheKeyHash> weights_;
  std::unordered_map<CacheKey, std::unique_ptr<CacheEntry>, CacheKeyHash> derived_;
};

} // namespace kiln::rt
