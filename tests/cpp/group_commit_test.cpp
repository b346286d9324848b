// GroupCommit: batching, arrival order, which thread runs a batch, and exactly-once under
// contention. The store's use of it (one transaction per batch) is in store_test.cpp.
#include "server/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace gridexp {
namespace {

struct TestCall {
  explicit TestCall(int call_id = 0) : id(call_id) {}
  int id;
  int runs = 0;
  std::thread::id ran_on;
};

// Waits (up to 10 s) until `ready` holds.
template <typename Predicate>
bool eventually(Predicate ready) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(GroupCommit, ALoneCallRunsAtOnceOnItsCallersThread) {
  std::vector<std::vector<int>> batches;
  GroupCommit<TestCall> group([&](const std::vector<TestCall*>& batch) {
    batches.emplace_back();
    for (TestCall* call : batch) {
      batches.back().push_back(call->id);
      call->ran_on = std::this_thread::get_id();
    }
  });
  TestCall first(1);
  TestCall second(2);
  group.submit(first);
  group.submit(second);
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1}, {2}}));
  EXPECT_EQ(first.ran_on, std::this_thread::get_id());
  EXPECT_EQ(group.stats().calls, 2);
  EXPECT_EQ(group.stats().batches, 2);
  EXPECT_EQ(group.waiting(), 0u);
}

TEST(GroupCommit, CallsArrivingDuringABatchShareTheNextOneInArrivalOrder) {
  std::mutex mutex;
  std::condition_variable changed;
  bool first_batch_running = false;
  bool release_first_batch = false;
  std::vector<std::vector<int>> batches;
  GroupCommit<TestCall> group([&](const std::vector<TestCall*>& batch) {
    std::unique_lock<std::mutex> lock(mutex);
    batches.emplace_back();
    for (TestCall* call : batch) {
      batches.back().push_back(call->id);
      call->ran_on = std::this_thread::get_id();
    }
    if (batches.size() == 1) {
      first_batch_running = true;
      changed.notify_all();
      changed.wait(lock, [&] { return release_first_batch; });
    }
  });

  std::vector<TestCall> calls(4);
  for (int i = 0; i < 4; ++i) calls[i].id = i;
  std::vector<std::thread> threads;
  threads.emplace_back([&] { group.submit(calls[0]); });
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return first_batch_running; });
  }
  for (std::size_t i = 1; i < 4; ++i) {
    threads.emplace_back([&, i] { group.submit(calls[i]); });
    ASSERT_TRUE(eventually([&] { return group.waiting() == i; }));
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    release_first_batch = true;
  }
  changed.notify_all();
  std::vector<std::thread::id> thread_ids;
  for (std::thread& thread : threads) thread_ids.push_back(thread.get_id());
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{0}, {1, 2, 3}}));
  EXPECT_EQ(calls[0].ran_on, thread_ids[0]);
  // The first call queued runs the next batch, for everyone in it.
  for (int i = 1; i < 4; ++i) EXPECT_EQ(calls[i].ran_on, thread_ids[1]);
  EXPECT_EQ(group.stats().calls, 4);
  EXPECT_EQ(group.stats().batches, 2);
}

TEST(GroupCommit, EveryCallRunsExactlyOnceAndBatchesNeverOverlap) {
  constexpr int kThreads = 8;
  constexpr int kCallsEach = 2000;
  std::atomic<bool> in_batch{false};
  std::atomic<int> overlaps{0};
  GroupCommit<TestCall> group([&](const std::vector<TestCall*>& batch) {
    if (in_batch.exchange(true)) ++overlaps;
    for (TestCall* call : batch) ++call->runs;
    in_batch = false;
  });
  std::vector<std::vector<TestCall>> calls(kThreads, std::vector<TestCall>(kCallsEach));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (TestCall& call : calls[t]) group.submit(call);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::vector<TestCall>& mine : calls) {
    for (const TestCall& call : mine) ASSERT_EQ(call.runs, 1);
  }
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(group.stats().calls, kThreads * kCallsEach);
  EXPECT_LE(group.stats().batches, kThreads * kCallsEach);
  EXPECT_EQ(group.waiting(), 0u);
}

}  // namespace
}  // namespace gridexp
