#include "dnnl_cache.h"

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

CacheEntry *DnnlCache::findDerived(const CacheKey &key) const {
  auto it = derived_.find(key);
  return it == derived_.end() ? nullptr : it->second.get();
}

CacheEntry *DnnlCache::insertDerived(const CacheKey &key, std::unique_ptr<CacheEntry> entry) {
  CacheEntry *raw = entry.get();
  derived_[key] = std::move(entry);
  return raw;
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
  }

  dnnl::memory src(plain, engine(), wp);
  dnnl::memory dst;
  if (cacheable) {
    dst = dnnl::memory(want, engine());
  } else {
    if (!scratch || scratch.get_desc() != want) scratch = dnnl::memory(want, engine());
    dst = scratch;
  }
  dnnl::reorder(src, dst).execute(stream(), src, dst);
  stream().wait();
  if (cacheable) weights_[key] = WeightEntry{want, dst};
  return dst;
}

} // namespace kiln::rt
