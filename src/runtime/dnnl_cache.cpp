#include "dnnl_cache.h"

#include "weight_memory.h"

namespace kiln::rt {

dnnl::engine &DnnlCache::engine() {
  // Created on first use so models without shim calls never touch oneDNN.
  if (!ready_) {
    engine_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    stream_ = dnnl::stream(engine_);
    ready_ = true;
  }
  return engine_;
}

dnnl::stream &DnnlCache::stream() {
  engine();
  return stream_;
}

CacheEntry *DnnlCache::find(const CacheKey &key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : it->second.get();
}

CacheEntry *DnnlCache::insert(const CacheKey &key, std::unique_ptr<CacheEntry> entry) {
  CacheEntry *raw = entry.get();
  entries_[key] = std::move(entry);
  return raw;
}

WeightStore &DnnlCache::ensureStore() {
  if (!store_) store_ = std::make_shared<WeightStore>();
  return *store_;
}

void DnnlCache::useStore(std::shared_ptr<WeightStore> store) {
  weights_.clear();
  derived_.clear();
  store_ = std::move(store); // null: ensureStore makes a fresh one on first use
}

CacheEntry *DnnlCache::findDerived(const CacheKey &key) {
  auto it = derived_.find(key);
  if (it != derived_.end()) return it->second;
  CacheEntry *e = ensureStore().find(key);
  if (e) derived_[key] = e;
  return e;
}

CacheEntry *DnnlCache::insertDerived(const CacheKey &key, std::unique_ptr<CacheEntry> entry,
                                     const void *src, size_t srcBytes) {
  CacheEntry *stored = ensureStore().insert(key, std::move(entry), src, srcBytes);
  derived_[key] = stored;
  return stored;
}

dnnl::memory DnnlCache::weights(int64_t site, const void *w, bool cacheable,
                                const dnnl::memory::desc &plain, const dnnl::memory::desc &want,
                                dnnl::memory &scratch) {
  void *wp = const_cast<void *>(w);
  if (plain == want) return dnnl::memory(plain, engine(), wp);

  CacheKey key;
  key.push(site);
  key.push(static_cast<int64_t>(reinterpret_cast<uintptr_t>(w)));
  if (cacheable) {
    auto it = weights_.find(key);
    if (it != weights_.end() && it->second.desc == want) return it->second.mem;
    WeightStore &store = ensureStore();
    dnnl::memory shared = store.findReordered(key, want);
    if (!shared) {
      dnnl::memory src(plain, engine(), wp);
      std::shared_ptr<void> owner;
      dnnl::memory dst = weightMemory(want, engine(), owner);
      dnnl::reorder(src, dst).execute(stream(), src, dst);
      stream().wait();
      shared = store.insertReordered(key, want, dst, std::move(owner), w, plain.get_size());
    }
    // A handle of this runner's engine on the shared buffer, which the store owns (this
    // cache holds the store until its memo is dropped).
    dnnl::memory mine(want, engine(), shared.get_data_handle());
    weights_[key] = WeightEntry{want, mine};
    return mine;
  }

  dnnl::memory src(plain, engine(), wp);
  if (!scratch || scratch.get_desc() != want) scratch = dnnl::memory(want, engine());
  dnnl::reorder(src, scratch).execute(stream(), src, scratch);
  stream().wait();
  return scratch;
}

} // namespace kiln::rt
