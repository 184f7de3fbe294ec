// WorkClaims (work_claim.h), how the runtime's GEMMs claim work items and attention claims
// heads: the static split it starts from, stealing from the back of the fullest range, every
// item run exactly once under contention, and a late thread's share taken over by the others.
#include "work_claim.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace {

using kiln::rt::WorkClaims;

// One thread claiming everything: its own range front to back (thread 0 of 3 owns [0, 4) of
// 10, as omp's static schedule gives the first 10 % 3 threads one item more), then one item at
// a time from the back of whichever range has most left (the first such on ties).
TEST(WorkClaims, OwnRangeFirstThenTheFullestRangesBack) {
  WorkClaims claims(10, 3);
  std::vector<int64_t> order;
  for (int64_t item = claims.next(0); item >= 0; item = claims.next(0))
    order.push_back(item);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 6, 9, 5, 8, 4, 7}));
  EXPECT_EQ(claims.next(1), -1);
  EXPECT_EQ(claims.next(2), -1);
}

TEST(WorkClaims, EachThreadsShareIsTheStaticSplit) {
  WorkClaims claims(7, 3); // [0, 3), [3, 5), [5, 7)
  EXPECT_EQ(claims.next(1), 3);
  EXPECT_EQ(claims.next(2), 5);
  EXPECT_EQ(claims.next(0), 0);
  EXPECT_EQ(claims.next(1), 4);
  EXPECT_EQ(claims.next(1), 2); // its own done: the back of thread 0's [1, 3)
}

TEST(WorkClaims, FewerItemsThanThreads) {
  WorkClaims claims(2, 4);
  // Ranges [0, 1), [1, 2), [2, 2), [2, 2): thread 3 steals from the first fullest.
  EXPECT_EQ(claims.next(3), 0);
  EXPECT_EQ(claims.next(2), 1);
  EXPECT_EQ(claims.next(0), -1);
  EXPECT_EQ(claims.next(1), -1);
}

// Many threads, items of uneven cost: each item runs exactly once.
TEST(WorkClaims, EveryItemOnceUnderContention) {
  const int team = 8;
  for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{1000}, int64_t{4099}}) {
    std::vector<std::atomic<int>> runs(count);
    WorkClaims claims(count, team);
#pragma omp parallel num_threads(team)
    claims.drain(omp_get_thread_num(), [&](int64_t item) {
      if (item % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      runs[item].fetch_add(1);
    });
    for (int64_t i = 0; i < count; ++i)
      ASSERT_EQ(runs[i].load(), 1) << "item " << i << " of " << count;
  }
}

// A thread that starts late (asleep, descheduled) finds its share already done by the others;
// a static schedule would have left the whole region waiting for it.
TEST(WorkClaims, ALateThreadsShareIsTakenOver) {
  const int64_t count = 64;
  WorkClaims claims(count, 2);
  std::atomic<int64_t> byFirst{0}, bySecond{0};
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    claims.drain(1, [&](int64_t) { bySecond.fetch_add(1); });
  });
  claims.drain(0, [&](int64_t) { byFirst.fetch_add(1); });
  late.join();
  EXPECT_EQ(byFirst.load(), count);
  EXPECT_EQ(bySecond.load(), 0);
}

} // namespace
