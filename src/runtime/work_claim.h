// Work items shared out among a team of threads so that a late or slowed thread does not hold
// the others up: each thread starts with the contiguous range a static schedule gives it (the
// same split as `omp for schedule(static)`: the first count % team threads one item more) and
// claims its items front to back; a thread that runs out takes items one at a time from the
// back of the range with the most items left. With every thread on time, each runs its own
// range in order, as the static schedule did (the GEMM's row groups and B prefetches keep their
// locality); where one is late (a vCPU the host has descheduled, a core shared with another
// process, a wake-up from sleep), the others finish its share instead of waiting at the
// region's barrier (docs/perf.md, session 31).
//
// A range is one 64-bit atomic, [begin, end) as two 32-bit halves: the owner moves begin up and
// a thief moves end down, each by compare-and-swap, so every item is claimed exactly once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace kiln::rt {

class WorkClaims {
public:
  /// `count` items (below 2^31) for `team` threads.
  WorkClaims(int64_t count, int team)
      : team_(team), heap_(team > kInline ? new Range[team] : nullptr),
        ranges_(heap_ ? heap_.get() : inline_) {
    const int64_t base = count / team, extra = count % team;
    int64_t begin = 0;
    for (int t = 0; t < team; ++t) {
      const int64_t end = begin + base + (t < extra ? 1 : 0);
      ranges_[t].bounds.store(pack(begin, end), std::memory_order_relaxed);
      begin = end;
    }
  }

  /// The next item for thread `self`: its own range first, then another's; -1 when none is left.
  int64_t next(int self) {
    if (int64_t item = claimFront(ranges_[self]); item >= 0) return item;
    for (;;) {
      Range *victim = nullptr;
      int64_t most = 0;
      for (int t = 0; t < team_; ++t) {
        const uint64_t b = ranges_[t].bounds.load(std::memory_order_acquire);
        if (const int64_t left = endOf(b) - beginOf(b); left > most) {
          most = left;
          victim = &ranges_[t];
        }
      }
      if (!victim) return -1;
      if (int64_t item = claimBack(*victim); item >= 0) return item;
    }
  }

  /// run(item) for every item, on the calling thread of an OpenMP team (thread `self`).
  template <class F> void drain(int self, const F &run) {
    for (int64_t item = next(self); item >= 0; item = next(self))
      run(item);
  }

private:
  struct alignas(64) Range { // one cache line each: the owners' claims do not contend
    std::atomic<uint64_t> bounds{0};
  };
  static uint64_t pack(int64_t begin, int64_t end) {
    return static_cast<uint64_t>(begin) | static_cast<uint64_t>(end) << 32;
  }
  static int64_t beginOf(uint64_t b) { return static_cast<int64_t>(b & 0xffffffffu); }
  static int64_t endOf(uint64_t b) { return static_cast<int64_t>(b >> 32); }

  static int64_t claimFront(Range &r) {
    uint64_t b = r.bounds.load(std::memory_order_acquire);
    while (beginOf(b) < endOf(b))
      if (r.bounds.compare_exchange_weak(b, pack(beginOf(b) + 1, endOf(b)),
                                         std::memory_order_acq_rel))
        return beginOf(b);
    return -1;
  }
  static int64_t claimBack(Range &r) {
    uint64_t b = r.bounds.load(std::memory_order_acquire);
    while (beginOf(b) < endOf(b))
      if (r.bounds.compare_exchange_weak(b, pack(beginOf(b), endOf(b) - 1),
                                         std::memory_order_acq_rel))
        return endOf(b) - 1;
    return -1;
  }

  static constexpr int kInline = 16; // teams up to this size claim from here, not the heap
  int team_;
  Range inline_[kInline];
  std::unique_ptr<Range[]> heap_;
  Range *ranges_;
};

} // namespace kiln::rt
