#include "weight_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

namespace kiln::rt {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t roundUp(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

constexpr size_t kRegionBytes = size_t(64) << 20;

size_t smallPage() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// An anonymous mapping of `bytes` (a multiple of 2 MiB) starting on a 2 MiB boundary: map
// 2 MiB more than needed, then unmap the slack before and after the aligned range.
void *mapAligned(size_t bytes) {
  void *raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t start = roundUp(base, kHugePage);
  if (start > base) munmap(raw, start - base);
  const size_t tail = base + bytes + kHugePage - (start + bytes);
  if (tail) munmap(reinterpret_cast<void *>(start + bytes), tail);
  void *p = reinterpret_cast<void *>(start);
  // Advice only: a kernel without THP leaves small pages, which is still correct.
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

// One mapping that buffers are carved from in order (never reused: fresh pages read as
// zeros); unmapped when the allocator and every buffer carved from it have let it go.
struct Region {
  char *base = nullptr;
  size_t size = 0, used = 0;
  ~Region() {
    if (base) munmap(base, size);
  }
};

std::mutex regionMu;
std::shared_ptr<Region> openRegion; // the region new buffers are carved from

// `size` bytes (a multiple of the page size) from the open region, or from a new one when it
// has no room; nullptr when the mapping fails.
std::shared_ptr<void> carve(size_t size) {
  std::lock_guard<std::mutex> lock(regionMu);
  if (!openRegion || openRegion->size - openRegion->used < size) {
    auto fresh = std::make_shared<Region>();
    fresh->size = std::max(kRegionBytes, roundUp(size, kHugePage));
    fresh->base = static_cast<char *>(mapAligned(fresh->size));
    if (!fresh->base) return nullptr;
    openRegion = std::move(fresh);
  }
  char *p = openRegion->base + openRegion->used;
  openRegion->used += size;
  // The deleter's copy of `region` keeps the mapping alive; a freed buffer gives its pages
  // back now (splitting a huge page it shares with a neighbour), not when the region goes.
  return std::shared_ptr<void>(
      p, [region = openRegion, size](void *q) { madvise(q, size, MADV_DONTNEED); });
}

} // namespace

bool hugeWeightPagesEnabled() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_HUGE_PAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

std::shared_ptr<void> allocateWeightBuffer(size_t bytes) {
  if (bytes >= kHugePage && hugeWeightPagesEnabled())
    if (std::shared_ptr<void> p = carve(roundUp(bytes, smallPage()))) return p;
  void *p = std::aligned_alloc(64, roundUp(bytes ? bytes : 1, 64));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::shared_ptr<void>(p, [](void *q) { std::free(q); });
}

dnnl::memory weightMemory(const dnnl::memory::desc &desc, const dnnl::engine &engine,
                          std::shared_ptr<void> &owner) {
  owner = allocateWeightBuffer(desc.get_size());
  return dnnl::memory(desc, engine, owner.get());
}

} // namespace kiln::rt
