#include "weight_store.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

namespace kiln::rt {

namespace {

/// The whole pages inside [p, p + bytes): where madvise may act without touching a
/// neighbour's bytes. Empty (bytes 0) when no whole page fits.
struct PageSpan {
  void *begin;
  size_t bytes;
};
PageSpan wholePagesIn(const void *p, size_t bytes) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (at + page - 1) & ~(page - 1), end = (at + bytes) & ~(page - 1);
  return {reinterpret_cast<void *>(begin), end > begin ? end - begin : 0};
}

} // namespace

bool releaseWeightPagesEnabled() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_RELEASE_WEIGHT_PAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

void WeightStore::setFileBackedSource(const char *base, size_t size) {
  fileBase_ = base;
  fileSize_ = size;
  if (!base || !size || !releaseWeightPagesEnabled()) return;
  const PageSpan pages = wholePagesIn(base, size);
  // Advice only: where the kernel refuses it, released pages may come back, which is correct.
  if (pages.bytes) madvise(pages.begin, pages.bytes, MADV_NOHUGEPAGE);
}

CacheEntry *WeightStore::find(const CacheKey &key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = derived_.find(key);
  return it == derived_.end() ? nullptr : it->second.get();
}

CacheEntry *WeightStore::insert(const CacheKey &key, std::unique_ptr<CacheEntry> entry,
                                const void *src, size_t srcBytes) {
  builds_.fetch_add(1, std::memory_order_relaxed);
  CacheEntry *stored;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // When another runner's copy won, ours is freed with `entry`.
    stored = derived_.try_emplace(key, std::move(entry)).first->second.get();
  }
  releaseSource(src, srcBytes); // also when we lost: building ours read the pages back in
  return stored;
}

dnnl::memory WeightStore::findReordered(const CacheKey &key, const dnnl::memory::desc &want) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = reordered_.find(key);
  if (it != reordered_.end())
    for (const Reordered &r : it->second)
      if (r.desc == want) return r.mem;
  return {};
}

dnnl::memory WeightStore::insertReordered(const CacheKey &key, const dnnl::memory::desc &want,
                                          const dnnl::memory &mem, std::shared_ptr<void> owner,
                                          const void *src, size_t srcBytes) {
  builds_.fetch_add(1, std::memory_order_relaxed);
  dnnl::memory stored = mem;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Reordered> &layouts = reordered_[key];
    bool found = false;
    for (const Reordered &r : layouts)
      if (r.desc == want) {
        stored = r.mem; // another runner's copy won
        found = true;
        break;
      }
    if (!found) layouts.push_back({want, mem, std::move(owner)});
  }
  releaseSource(src, srcBytes); // also when we lost: building ours read the pages back in
  return stored;
}

size_t WeightStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = derived_.size();
  for (const auto &[key, layouts] : reordered_)
    n += layouts.size();
  return n;
}

void WeightStore::releaseSource(const void *src, size_t bytes) {
  if (!src || !bytes || !fileBase_ || !releaseWeightPagesEnabled()) return;
  const char *p = static_cast<const char *>(src);
  if (p < fileBase_ || p + bytes > fileBase_ + fileSize_) return; // not from the mapping
  // Only whole pages inside the constant: a neighbour's bytes on a shared page stay mapped
  // (dropping them would be correct too, but would cost it a fault for nothing).
  const PageSpan pages = wholePagesIn(p, bytes);
  if (!pages.bytes) return;
  // A private read-only file mapping: the pages fault back in from the file if read again,
  // so this loses nothing but residency. A failure leaves them resident, which is harmless.
  if (madvise(pages.begin, pages.bytes, MADV_DONTNEED) == 0)
    released_.fetch_add(pages.bytes, std::memory_order_relaxed);
}

} // namespace kiln::rt
