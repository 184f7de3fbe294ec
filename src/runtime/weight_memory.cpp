#include "weight_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace kiln::rt {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t roundUp(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

// An anonymous mapping of `bytes` (page-rounded) starting on a 2 MiB boundary: map 2 MiB
// more than needed, then unmap the slack before and after the aligned range.
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

} // namespace

bool hugeWeightPagesEnabled() {
  static const bool on = [] {
    const char *v = std::getenv("KILN_HUGE_PAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

std::shared_ptr<void> allocateWeightBuffer(size_t bytes) {
  if (bytes >= kHugePage && hugeWeightPagesEnabled()) {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = roundUp(bytes, page);
    if (void *p = mapAligned(size)) // fresh anonymous pages read as zeros
      return std::shared_ptr<void>(p, [size](void *q) { munmap(q, size); });
  }
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
