// Weight buffers (weight_memory.h): large ones carved back to back from 2 MiB-aligned regions
// on transparent huge pages where the kernel allows them, small ones ordinary; both
// zero-filled and usable by oneDNN; a freed large buffer gives its pages back at once.
#include "weight_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::rt {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

bool allZero(const void *p, size_t bytes) {
  const unsigned char *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < bytes; ++i)
    if (b[i]) return false;
  return true;
}

// A field ("Rss", "AnonHugePages") in kB of the mapping of /proc/self/smaps that contains p,
// or -1 when no mapping contains p (or the field is not reported).
long smapsKbAt(const void *p, const char *field) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const std::string prefix = std::string(field) + ":";
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) { // a mapping's header line
      inside = lo <= a && a < hi;
      continue;
    }
    long kb;
    if (inside && line.rfind(prefix, 0) == 0 &&
        std::sscanf(line.c_str() + prefix.size(), " %ld kB", &kb) == 1)
      return kb;
  }
  return -1;
}

bool thpAllowsMadvise() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::stringstream s;
  s << f.rdbuf();
  return s.str().find("[never]") == std::string::npos && !s.str().empty();
}

TEST(WeightMemory, LargeBuffersArePageAlignedZeroAndOnHugePages) {
  if (!hugeWeightPagesEnabled()) GTEST_SKIP() << "KILN_HUGE_PAGES=0";
  const size_t bytes = 5 * kMiB + 100; // a partial last huge page and a partial small page
  auto buf = allocateWeightBuffer(bytes);
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.get()) % 4096, 0u);
  EXPECT_TRUE(allZero(buf.get(), bytes));
  std::memset(buf.get(), 0x5a, bytes); // every byte writable
  if (!thpAllowsMadvise()) GTEST_SKIP() << "transparent huge pages are off on this kernel";
  long kb = smapsKbAt(buf.get(), "AnonHugePages");
  if (kb < 0) GTEST_SKIP() << "/proc/self/smaps does not report AnonHugePages here";
  // The kernel may still fall back to small pages when it finds no free 2 MiB block.
  if (kb == 0) GTEST_SKIP() << "the kernel found no huge page for the buffer";
  EXPECT_GE(kb, 4096) << "the buffer's whole huge pages should sit on huge pages";
}

TEST(WeightMemory, LargeBuffersAreBackToBackAndGiveTheirPagesBack) {
  if (!hugeWeightPagesEnabled()) GTEST_SKIP() << "KILN_HUGE_PAGES=0";
  // BERT-like weights (768 x 768 floats: 2.25 MiB, not a multiple of 2 MiB): each starts at
  // the page-rounded end of the one before, so no last huge page is left half empty.
  const size_t bytes = 768 * 768 * sizeof(float);
  auto zeroth = allocateWeightBuffer(bytes);
  auto first = allocateWeightBuffer(bytes);
  auto second = allocateWeightBuffer(bytes);
  ASSERT_TRUE(zeroth && first && second);
  const char *z = static_cast<const char *>(zeroth.get());
  const char *a = static_cast<const char *>(first.get());
  // A region (64 MiB) ends at most once among the two gaps: test a pair that shares one.
  const bool laterPair = static_cast<const char *>(second.get()) == a + bytes;
  ASSERT_TRUE(laterPair || a == z + bytes) << "large buffers are not carved back to back";
  std::shared_ptr<void> &lower = laterPair ? first : zeroth, &upper = laterPair ? second : first;
  a = static_cast<const char *>(lower.get());
  const char *b = static_cast<const char *>(upper.get());
  std::memset(lower.get(), 1, bytes);
  std::memset(upper.get(), 2, bytes);
  const long before = smapsKbAt(b, "Rss");
  if (before < 0) GTEST_SKIP() << "/proc/self/smaps does not report Rss here";
  // Freeing the upper one returns its pages while the lower keeps the region mapped.
  upper.reset();
  const long after = smapsKbAt(a, "Rss");
  ASSERT_GE(after, 0) << "the region went while a buffer in it lives";
  EXPECT_LE(after, before - 1024) << "freed pages stayed resident";
  EXPECT_EQ(static_cast<const unsigned char *>(lower.get())[bytes - 1], 1u);
}

TEST(WeightMemory, SmallBuffersAreOrdinaryAndZero) {
  for (size_t bytes : {size_t(1), size_t(1000), 2 * kMiB - 1}) {
    auto buf = allocateWeightBuffer(bytes);
    ASSERT_NE(buf, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.get()) % 64, 0u) << bytes;
    EXPECT_TRUE(allZero(buf.get(), bytes)) << bytes;
  }
}

TEST(WeightMemory, OneDnnReordersIntoAndOutOfIt) {
  // A 768 x 1024 weight (3 MiB) reordered into a blocked layout held in a weight buffer and
  // back out: the round trip must give every value back.
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const dnnl::memory::dims dims{768, 1024};
  const auto f32 = dnnl::memory::data_type::f32;
  dnnl::memory::desc plainMd(dims, f32, dnnl::memory::format_tag::ab);
  dnnl::memory::desc blockedMd(dims, f32, dnnl::memory::format_tag::BA16a64b);
  std::vector<float> in(768 * 1024), out(in.size(), -1.f);
  for (size_t i = 0; i < in.size(); ++i)
    in[i] = static_cast<float>(i % 9973) * 0.5f - 7.f;
  std::shared_ptr<void> owner;
  dnnl::memory blocked = weightMemory(blockedMd, eng, owner);
  ASSERT_EQ(blocked.get_data_handle(), owner.get());
  dnnl::memory src(plainMd, eng, in.data()), dst(plainMd, eng, out.data());
  dnnl::reorder(src, blocked).execute(s, src, blocked);
  dnnl::reorder(blocked, dst).execute(s, blocked, dst);
  s.wait();
  EXPECT_EQ(in, out);
}

} // namespace
} // namespace kiln::rt
