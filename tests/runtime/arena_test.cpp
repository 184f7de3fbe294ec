// The scratch arena: alignment, growth, and coalescing into one chunk; the cache-line aligned
// vectors of the kernels' own scratch.
#include "aligned_vector.h"
#include "arena.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

TEST(Arena, AlignedAndCoalescesAfterGrowth) {
  kiln::rt::Arena arena;
  for (int i = 0; i < 5; ++i) {
    void *p = arena.alloc(3 << 20); // larger than one default chunk each time
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  }
  EXPECT_GT(arena.numChunks(), 1u);
  size_t cap = arena.capacity();
  arena.reset();
  EXPECT_EQ(arena.numChunks(), 1u);
  EXPECT_GE(arena.capacity(), cap);
  // The same run again fits in the single chunk: no new chunk.
  for (int i = 0; i < 5; ++i)
    ASSERT_NE(arena.alloc(3 << 20), nullptr);
  EXPECT_EQ(arena.numChunks(), 1u);
}

TEST(Arena, ZeroByteAllocationsAreDistinct) {
  kiln::rt::Arena arena;
  void *a = arena.alloc(0);
  void *b = arena.alloc(0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(a, b);
  void *c = arena.alloc(1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c) % 64, 0u);
}

// Sizes malloc serves from its heap and from mmap (whose blocks start 16 bytes into a page):
// a plain std::vector<float> would start off the cache line at both.
TEST(AlignedVector, StartsOnACacheLineAtEverySize) {
  for (size_t n : {1u, 17u, 1000u, 40000u, 300000u}) {
    kiln::rt::AlignedVector<float> v(n, 1.f);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u) << n;
    v.resize(n * 3 + 5, 2.f); // growth reallocates, keeping the alignment and the contents
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u) << n;
    EXPECT_EQ(v[n - 1], 1.f);
    EXPECT_EQ(v[n], 2.f);
  }
}

} // namespace
