// The peak GPU memory a completion reports (TrialMeasurements): recorded with the trial,
// read back, cleared by a retry, and a database from before it existed migrated (v6).
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "server/sqlite_store.h"
#include "server/store.h"
#include "store_test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

class StoreGpuMemoryTest : public SqliteStoreFile {
 protected:
  static TrialMeasurements peak(std::int64_t bytes) { return TrialMeasurements{bytes}; }
};

TEST_F(StoreGpuMemoryTest, ACompletionRecordsThePeakItReports) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(3)));
  std::string worker = register_worker(*store);

  Lease first = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->complete(first.trial_id, first.lease_token, {{"acc", 1}}, peak(3'221'225'472)));
  Lease second = *value_of(store->claim_next_trial(worker)).lease;
  ClaimOutcome next = value_of(
      store->complete_and_claim(second.trial_id, second.lease_token, {}, peak(0), "claim-1"));
  ASSERT_TRUE(next.lease.has_value());
  expect_ok(store->complete(next.lease->trial_id, next.lease->lease_token, {}));

  EXPECT_EQ(value_of(store->get_trial(first.trial_id)).peak_gpu_memory_bytes, 3'221'225'472);
  EXPECT_EQ(value_of(store->get_trial(second.trial_id)).peak_gpu_memory_bytes, 0);
  EXPECT_FALSE(value_of(store->get_trial(next.lease->trial_id)).peak_gpu_memory_bytes.has_value())
      << "a completion that reports none";
  std::vector<TrialRecord> trials = value_of(store->list_trials("exp"));
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_EQ(trials[0].peak_gpu_memory_bytes, 3'221'225'472);
}

TEST_F(StoreGpuMemoryTest, EachAttemptKeepsThePeakItsCompletionReported) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  Lease released = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->release(released.trial_id, released.lease_token));
  Lease cancelled = *value_of(store->claim_next_trial(worker)).lease;
  ASSERT_EQ(value_of(store->cancel_trials({"exp", std::nullopt})).size(), 1u);
  expect_ok(store->complete(cancelled.trial_id, cancelled.lease_token, {}, peak(1024)));
  ASSERT_EQ(value_of(store->retry_trials({"exp", std::nullopt})).size(), 1u);
  Lease done = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->complete(done.trial_id, done.lease_token, {}, peak(2048)));

  std::vector<AttemptRecord> attempts = value_of(store->list_attempts(done.trial_id));
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].outcome, "released");
  EXPECT_FALSE(attempts[0].peak_gpu_memory_bytes.has_value());
  EXPECT_EQ(attempts[1].outcome, "cancelled");
  EXPECT_EQ(attempts[1].peak_gpu_memory_bytes, 1024);
  EXPECT_EQ(attempts[2].outcome, "done");
  EXPECT_EQ(attempts[2].peak_gpu_memory_bytes, 2048);
  EXPECT_EQ(value_of(store->get_trial(done.trial_id)).peak_gpu_memory_bytes, 2048);
}

TEST_F(StoreGpuMemoryTest, AFailureRecordsThePeakItReports) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(2)));
  std::string worker = register_worker(*store);
  Lease out_of_memory = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->fail(out_of_memory.trial_id, out_of_memory.lease_token,
                        "torch.OutOfMemoryError: CUDA out of memory", "", peak(80'000'000'000)));
  Lease plain = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->fail(plain.trial_id, plain.lease_token, "ValueError: bad", ""));

  TrialRecord failed = value_of(store->get_trial(out_of_memory.trial_id));
  EXPECT_EQ(failed.state, TrialState::kFailed);
  EXPECT_EQ(failed.peak_gpu_memory_bytes, 80'000'000'000);
  EXPECT_EQ(value_of(store->list_attempts(out_of_memory.trial_id)).at(0).peak_gpu_memory_bytes,
            80'000'000'000);
  EXPECT_FALSE(value_of(store->get_trial(plain.trial_id)).peak_gpu_memory_bytes.has_value());
}

TEST_F(StoreGpuMemoryTest, ARetryClearsThePeakWithTheResults) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  Lease lease = *value_of(store->claim_next_trial(worker)).lease;
  ASSERT_EQ(value_of(store->cancel_trials({"exp", std::nullopt})).size(), 1u);
  expect_ok(store->complete(lease.trial_id, lease.lease_token, {{"partial", 1}}, peak(1024)));
  TrialRecord cancelled = value_of(store->get_trial(lease.trial_id));
  EXPECT_EQ(cancelled.state, TrialState::kCancelled);
  EXPECT_EQ(cancelled.peak_gpu_memory_bytes, 1024);

  ASSERT_EQ(value_of(store->retry_trials({"exp", std::nullopt})).size(), 1u);
  EXPECT_FALSE(value_of(store->get_trial(lease.trial_id)).peak_gpu_memory_bytes.has_value());
}

TEST_F(StoreGpuMemoryTest, AVersion5DatabaseIsMigratedWithoutPeaks) {
  Lease taken_before;
  {
    SqliteOptions version5;
    version5.migrate_up_to_version = 5;
    std::unique_ptr<SqliteStore> old = open_store(version5);
    expect_ok(old->sync_grid(grid_of(2)));
    taken_before = *value_of(old->claim_next_trial(register_worker(*old))).lease;
  }
  std::unique_ptr<SqliteStore> store = open_store();
  for (const TrialRecord& trial : value_of(store->list_trials("exp"))) {
    EXPECT_FALSE(trial.peak_gpu_memory_bytes.has_value()) << trial.id;
  }
  expect_ok(store->complete(taken_before.trial_id, taken_before.lease_token, {}, peak(77)));
  TrialRecord done = value_of(store->get_trial(taken_before.trial_id));
  EXPECT_EQ(done.state, TrialState::kDone);
  EXPECT_EQ(done.peak_gpu_memory_bytes, 77);
}

}  // namespace
}  // namespace gridexp
