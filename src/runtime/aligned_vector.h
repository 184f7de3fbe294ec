// A std::vector whose storage starts on a 64-byte cache line, for scratch that vector kernels
// read and write in whole 64-byte vectors.
//
// Why: glibc's malloc aligns to 16 bytes, so in a plain std::vector<float> every 16-float
// vector at a multiple-of-16 offset straddles two cache lines, and each load or store of it
// costs two. The depthwise kernel on a conv chain's expanded rows ran 1.5x slower that way
// (docs/perf.md, session 24), and the GEMMs around it stored their tiles across lines.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace kiln::rt {

constexpr std::size_t kCacheLine = 64;

template <class T> struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U> CacheLineAllocator(const CacheLineAllocator<U> &) noexcept {}
  T *allocate(std::size_t n) {
    return static_cast<T *>(::operator new (n * sizeof(T), std::align_val_t{kCacheLine}));
  }
  void deallocate(T *p, std::size_t) noexcept {
    ::operator delete (p, std::align_val_t{kCacheLine});
  }
  template <class U> bool operator==(const CacheLineAllocator<U> &) const noexcept { return true; }
};

template <class T> using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

} // namespace kiln::rt
