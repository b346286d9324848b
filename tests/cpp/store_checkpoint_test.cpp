// Preemption and checkpoints in the store (schema v8): a preempted attempt is history but not
// counted, a trial's checkpoint is replaced under its lease and handed to the next claim, which
// records that it resumed; done drops it, failed and cancelled keep it; older databases migrate.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/sqlite_store.h"
#include "server/store.h"
#include "store_test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

constexpr int kMaxAttempts = 2;

class StoreCheckpointTest : public SqliteStoreFile {
 protected:
  StoreCheckpointTest() : SqliteStoreFile(StoreOptions{10'000, kMaxAttempts}) {}

  static CheckpointInfo checkpoint(const std::string& file_name, std::optional<std::int64_t> step) {
    CheckpointInfo info;
    info.step = step;
    info.kind = "object";
    info.size_bytes = 123;
    info.sha256 = std::string(64, 'a');
    info.file_name = file_name;
    return info;
  }

  static std::vector<std::string> outcomes(Store& store, const std::string& trial_id) {
    std::vector<std::string> found;
    for (const AttemptRecord& attempt : value_of(store.list_attempts(trial_id))) {
      found.push_back(std::to_string(attempt.attempt) + " " + attempt.outcome);
    }
    return found;
  }
};

TEST_F(StoreCheckpointTest, APreemptionHandsTheTrialBackAtOnceWithoutCountingTheAttempt) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  // More preemptions than --max-attempts: none counts, so the trial never fails of them.
  for (int i = 0; i < kMaxAttempts + 2; ++i) {
    Lease lease = *value_of(store->claim_next_trial(worker)).lease;
    EXPECT_EQ(lease.attempt, 1) << "a preempted claim gives its attempt back";
    EXPECT_EQ(value_of(store->preempt(lease.trial_id, lease.lease_token, "SIGTERM")),
              TrialState::kPending);
    TrialRecord trial = value_of(store->get_trial(lease.trial_id));
    EXPECT_EQ(trial.state, TrialState::kPending);
    EXPECT_EQ(trial.attempts, 0);
    EXPECT_FALSE(trial.worker_id.has_value());
    EXPECT_EQ(value_of(store->list_workers()).at(0).current_trial, std::nullopt);
  }
  Lease last = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->complete(last.trial_id, last.lease_token, {}));
  std::vector<AttemptRecord> attempts = value_of(store->list_attempts(last.trial_id));
  ASSERT_EQ(attempts.size(), static_cast<std::size_t>(kMaxAttempts + 3));
  for (std::size_t i = 0; i + 1 < attempts.size(); ++i) {
    EXPECT_EQ(attempts[i].outcome, "preempted");
    EXPECT_EQ(attempts[i].error, "SIGTERM");
    EXPECT_TRUE(attempts[i].ended_ms.has_value());
  }
  EXPECT_EQ(attempts.back().outcome, "done");
  EXPECT_EQ(attempts.back().attempt, 1);
  EXPECT_EQ(value_of(store->list_workers()).at(0).trials_failed, 0);
}

TEST_F(StoreCheckpointTest, APreemptionWithoutAReasonRecordsNone) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  Lease lease = *value_of(store->claim_next_trial(register_worker(*store))).lease;
  EXPECT_EQ(value_of(store->preempt(lease.trial_id, lease.lease_token, "")), TrialState::kPending);
  EXPECT_FALSE(value_of(store->list_attempts(lease.trial_id)).at(0).error.has_value());
}

TEST_F(StoreCheckpointTest, APreemptedTrialThatWasCancelledEndsCancelled) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  Lease lease = *value_of(store->claim_next_trial(register_worker(*store))).lease;
  ASSERT_EQ(value_of(store->cancel_trials({"exp", std::nullopt})).size(), 1u);
  EXPECT_EQ(value_of(store->preempt(lease.trial_id, lease.lease_token, "SIGTERM")),
            TrialState::kCancelled);
  EXPECT_EQ(value_of(store->get_trial(lease.trial_id)).state, TrialState::kCancelled);
  EXPECT_EQ(outcomes(*store, lease.trial_id), std::vector<std::string>{"1 cancelled"});
  EXPECT_EQ(value_of(store->list_attempts(lease.trial_id)).at(0).error, "SIGTERM");
}

TEST_F(StoreCheckpointTest, APreemptionNeedsTheLiveLease) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  Lease first = *value_of(store->claim_next_trial(worker)).lease;
  EXPECT_EQ(value_of(store->preempt(first.trial_id, first.lease_token, "SIGTERM")),
            TrialState::kPending);
  Result<TrialState> again = store->preempt(first.trial_id, first.lease_token, "SIGTERM");
  EXPECT_EQ(again.status().code(), Code::kConflict);
  EXPECT_NE(again.status().message().find("handed back"), std::string::npos)
      << again.status().message();
  EXPECT_EQ(store->preempt(first.trial_id, "not-a-token", "").status().code(), Code::kConflict);
  EXPECT_EQ(store->preempt("0000000000000000", "t", "").status().code(), Code::kNotFound);
}

TEST_F(StoreCheckpointTest, ACheckpointReplacesThePreviousOneAndGoesToTheNextClaim) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(2)));
  std::string worker = register_worker(*store);
  ClaimOutcome first_claim = value_of(store->claim_next_trial(worker));
  Lease first = *first_claim.lease;
  EXPECT_FALSE(first.checkpoint.has_value());
  EXPECT_FALSE(value_of(store->list_attempts(first.trial_id)).at(0).resumed);

  clock_.advance_ms(1'000);
  EXPECT_EQ(value_of(store->record_checkpoint(first.trial_id, first.lease_token,
                                              checkpoint("a.ckpt", 10))),
            std::nullopt);
  clock_.advance_ms(1'000);
  EXPECT_EQ(value_of(store->record_checkpoint(first.trial_id, first.lease_token,
                                              checkpoint("b.ckpt", 20))),
            "a.ckpt");
  // The same file again (same content): nothing for the caller to delete.
  EXPECT_EQ(value_of(store->record_checkpoint(first.trial_id, first.lease_token,
                                              checkpoint("b.ckpt", 20))),
            std::nullopt);
  EXPECT_EQ(value_of(store->checkpoint_files()), std::vector<std::string>{"b.ckpt"});

  TrialRecord trial = value_of(store->get_trial(first.trial_id));
  ASSERT_TRUE(trial.checkpoint.has_value());
  EXPECT_EQ(trial.checkpoint->step, 20);
  EXPECT_EQ(trial.checkpoint->attempt, 1);
  EXPECT_EQ(trial.checkpoint->saved_ms, clock_.now_ms());
  EXPECT_EQ(trial.checkpoint->kind, "object");
  EXPECT_EQ(trial.checkpoint->size_bytes, 123);
  EXPECT_EQ(value_of(store->list_trials("exp")).at(0).checkpoint->file_name, "b.ckpt");

  EXPECT_EQ(value_of(store->preempt(first.trial_id, first.lease_token, "SIGTERM")),
            TrialState::kPending);
  Lease resumed = *value_of(store->claim_next_trial(worker)).lease;
  ASSERT_EQ(resumed.trial_id, first.trial_id);
  ASSERT_TRUE(resumed.checkpoint.has_value());
  EXPECT_EQ(resumed.checkpoint->step, 20);
  EXPECT_EQ(resumed.checkpoint->file_name, "b.ckpt");
  std::vector<AttemptRecord> attempts = value_of(store->list_attempts(first.trial_id));
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_FALSE(attempts[0].resumed);
  EXPECT_TRUE(attempts[1].resumed);
  EXPECT_EQ(attempts[1].resumed_from_step, 20);
  // A claim sent again gets the lease with its checkpoint.
  Lease other = *value_of(store->claim_next_trial(worker, "c1")).lease;
  EXPECT_FALSE(other.checkpoint.has_value());
  ClaimOutcome again = value_of(store->claim_next_trial(worker, "c1"));
  EXPECT_TRUE(again.resumed);
}

TEST_F(StoreCheckpointTest, ACheckpointWithoutAStepStillMarksTheAttemptResumed) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  Lease lease = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->record_checkpoint(lease.trial_id, lease.lease_token, checkpoint("a.ckpt", {}))
                .status());
  clock_.advance_ms(20'000);  // the lease expires: the next claim counts a second attempt
  Lease next = *value_of(store->claim_next_trial(worker)).lease;
  EXPECT_EQ(next.attempt, 2);
  ASSERT_TRUE(next.checkpoint.has_value());
  EXPECT_FALSE(next.checkpoint->step.has_value());
  EXPECT_EQ(next.checkpoint->attempt, 1);
  AttemptRecord second = value_of(store->list_attempts(lease.trial_id)).at(1);
  EXPECT_TRUE(second.resumed);
  EXPECT_FALSE(second.resumed_from_step.has_value());
}

TEST_F(StoreCheckpointTest, ACheckpointNeedsTheLiveLease) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(1)));
  std::string worker = register_worker(*store);
  Lease lease = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->release(lease.trial_id, lease.lease_token));
  EXPECT_EQ(store->record_checkpoint(lease.trial_id, lease.lease_token, checkpoint("a.ckpt", 1))
                .status()
                .code(),
            Code::kConflict);
  EXPECT_FALSE(value_of(store->get_trial(lease.trial_id)).checkpoint.has_value());
  EXPECT_TRUE(value_of(store->checkpoint_files()).empty());
}

TEST_F(StoreCheckpointTest, DoneDropsTheCheckpointFailedAndCancelledKeepIt) {
  std::unique_ptr<SqliteStore> store = open_store();
  expect_ok(store->sync_grid(grid_of(3)));
  std::string worker = register_worker(*store);
  Lease done = *value_of(store->claim_next_trial(worker)).lease;
  Lease failed = *value_of(store->claim_next_trial(worker)).lease;
  Lease cancelled = *value_of(store->claim_next_trial(worker)).lease;
  for (const Lease* lease : {&done, &failed, &cancelled}) {
    expect_ok(store
                  ->record_checkpoint(lease->trial_id, lease->lease_token,
                                      checkpoint(lease->trial_id + ".ckpt", 5))
                  .status());
  }
  expect_ok(store->complete(done.trial_id, done.lease_token, {}));
  expect_ok(store->fail(failed.trial_id, failed.lease_token, "ValueError", ""));
  ASSERT_EQ(
      value_of(store->cancel_trials({"exp", std::vector<std::string>{cancelled.trial_id}})).size(),
      1u);
  expect_ok(store->complete(cancelled.trial_id, cancelled.lease_token, {}));

  EXPECT_FALSE(value_of(store->get_trial(done.trial_id)).checkpoint.has_value());
  EXPECT_TRUE(value_of(store->get_trial(failed.trial_id)).checkpoint.has_value());
  EXPECT_TRUE(value_of(store->get_trial(cancelled.trial_id)).checkpoint.has_value());
  std::vector<std::string> files = value_of(store->checkpoint_files());
  std::sort(files.begin(), files.end());
  std::vector<std::string> kept{failed.trial_id + ".ckpt", cancelled.trial_id + ".ckpt"};
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(files, kept);

  // A retry resumes from the kept checkpoint.
  ASSERT_EQ(value_of(store->retry_trials({"exp", std::nullopt})).size(), 2u);
  Lease retried = *value_of(store->claim_next_trial(worker)).lease;
  ASSERT_TRUE(retried.checkpoint.has_value());
  EXPECT_EQ(retried.checkpoint->file_name, retried.trial_id + ".ckpt");
  // complete_and_claim drops it too.
  ClaimOutcome next =
      value_of(store->complete_and_claim(retried.trial_id, retried.lease_token, {}, "n1"));
  EXPECT_FALSE(value_of(store->get_trial(retried.trial_id)).checkpoint.has_value());
  ASSERT_TRUE(next.lease.has_value());
  EXPECT_TRUE(next.lease->checkpoint.has_value()) << "the other retried trial's";
}

TEST_F(StoreCheckpointTest, AVersion7DatabaseIsMigratedKeepingItsAttempts) {
  std::string trial_id;
  {
    SqliteOptions version7;
    version7.migrate_up_to_version = 7;
    std::unique_ptr<SqliteStore> old = open_store(version7);
    expect_ok(old->sync_grid(grid_of(2)));
    std::string worker = register_worker(*old);
    Lease released = *value_of(old->claim_next_trial(worker)).lease;
    trial_id = released.trial_id;
    expect_ok(old->release(released.trial_id, released.lease_token));
    Lease lost = *value_of(old->claim_next_trial(worker)).lease;
    EXPECT_EQ(value_of(old->requeue_lost(lost.trial_id, lost.lease_token, "killed by SIGKILL")),
              TrialState::kPending);
    Lease running = *value_of(old->claim_next_trial(worker)).lease;
    EXPECT_FALSE(running.checkpoint.has_value());
    expect_ok(old->complete(running.trial_id, running.lease_token, {}, TrialMeasurements{42}));
  }
  std::unique_ptr<SqliteStore> store = open_store();
  EXPECT_EQ(outcomes(*store, trial_id),
            (std::vector<std::string>{"1 released", "1 lost", "2 done"}));
  for (const AttemptRecord& attempt : value_of(store->list_attempts(trial_id))) {
    EXPECT_FALSE(attempt.resumed);
    EXPECT_FALSE(attempt.resumed_from_step.has_value());
  }
  EXPECT_EQ(value_of(store->list_attempts(trial_id)).at(1).error, "killed by SIGKILL");
  EXPECT_EQ(value_of(store->list_attempts(trial_id)).at(2).peak_gpu_memory_bytes, 42);
  EXPECT_FALSE(value_of(store->get_trial(trial_id)).checkpoint.has_value());
  EXPECT_TRUE(value_of(store->checkpoint_files()).empty());
  // The new outcome and columns work on the migrated tables.
  std::string worker = register_worker(*store);
  Lease lease = *value_of(store->claim_next_trial(worker)).lease;
  expect_ok(store->record_checkpoint(lease.trial_id, lease.lease_token, checkpoint("x.ckpt", 3))
                .status());
  EXPECT_EQ(value_of(store->preempt(lease.trial_id, lease.lease_token, "SIGTERM")),
            TrialState::kPending);
  Lease resumed = *value_of(store->claim_next_trial(worker)).lease;
  EXPECT_EQ(resumed.checkpoint->step, 3);
  EXPECT_EQ(outcomes(*store, lease.trial_id),
            (std::vector<std::string>{"1 preempted", "1 running"}));
}

TEST_F(StoreCheckpointTest, AVersion1DatabaseMigratesToCheckpoints) {
  {
    SqliteOptions version1;
    version1.migrate_up_to_version = 1;
    std::unique_ptr<SqliteStore> old = open_store(version1);
    expect_ok(old->sync_grid(grid_of(1)));
  }
  std::unique_ptr<SqliteStore> store = open_store();
  Lease lease = *value_of(store->claim_next_trial(register_worker(*store))).lease;
  expect_ok(store->record_checkpoint(lease.trial_id, lease.lease_token, checkpoint("y.ckpt", 1))
                .status());
  EXPECT_EQ(value_of(store->checkpoint_files()), std::vector<std::string>{"y.ckpt"});
}

}  // namespace
}  // namespace gridexp
