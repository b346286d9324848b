// Store tests, written against the Store interface: StoreTest runs once per backend listed in
// INSTANTIATE_TEST_SUITE_P at the end of its section, so another backend gets the whole suite
// by adding one line. SqliteStoreTest covers what only a file database can show: restarts.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/sqlite_store.h"
#include "server/store.h"
#include "server/wal_checkpointer.h"
#include "store_test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

constexpr TimeMs kLeaseMs = 10'000;
constexpr int kMaxAttempts = 3;

::testing::AssertionResult IsError(const Status& status, Code code, std::string_view fragment) {
  if (status.code() != code) {
    return ::testing::AssertionFailure()
           << "code " << static_cast<int>(status.code()) << " instead of " << static_cast<int>(code)
           << " (message: \"" << status.message() << "\")";
  }
  if (status.message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message \"" << status.message() << "\" does not mention \"" << fragment << "\"";
  }
  return ::testing::AssertionSuccess();
}

std::string id_of(const std::string& experiment, int x) {
  return Grid::trial_id(experiment, {{"x", x}});
}

ExperimentSummary summary_of(Store& store, const std::string& experiment) {
  for (ExperimentSummary& summary : value_of(store.list_experiments())) {
    if (summary.name == experiment) return summary;
  }
  throw std::runtime_error("no summary for " + experiment);
}

WorkerRecord worker_record(Store& store, const std::string& worker_id) {
  for (WorkerRecord& worker : value_of(store.list_workers())) {
    if (worker.id == worker_id) return worker;
  }
  throw std::runtime_error("no worker " + worker_id);
}

// Checks every summary against a count of the experiment's trials: for the active
// experiment only those in config, for the others all.
void expect_summaries_match_trials(Store& store) {
  for (const ExperimentSummary& summary : value_of(store.list_experiments())) {
    ExperimentSummary counted;
    for (const TrialRecord& trial : value_of(store.list_trials(summary.name))) {
      if (summary.active && !trial.in_config) continue;
      switch (trial.state) {
        case TrialState::kPending:
          ++counted.pending;
          break;
        case TrialState::kRunning:
          ++counted.running;
          break;
        case TrialState::kDone:
          ++counted.done;
          break;
        case TrialState::kFailed:
          ++counted.failed;
          break;
        case TrialState::kCancelled:
          ++counted.cancelled;
          break;
      }
    }
    EXPECT_EQ(summary.pending, counted.pending) << summary.name;
    EXPECT_EQ(summary.running, counted.running) << summary.name;
    EXPECT_EQ(summary.done, counted.done) << summary.name;
    EXPECT_EQ(summary.failed, counted.failed) << summary.name;
    EXPECT_EQ(summary.cancelled, counted.cancelled) << summary.name;
  }
}

// Opens a fresh, empty store whose files (if any) live in `scratch_dir`.
using StoreFactory = std::function<Result<std::unique_ptr<Store>>(
    const std::filesystem::path& scratch_dir, const Clock& clock, StoreOptions options)>;

struct StoreBackend {
  std::string name;
  StoreFactory open;
};

// So that a failing test names its backend rather than dumping bytes.
void PrintTo(const StoreBackend& backend, std::ostream* out) { *out << backend.name; }

class StoreTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  StoreTest() { reopen(StoreOptions{kLeaseMs, kMaxAttempts}); }

  void reopen(StoreOptions options) {
    store_.reset();
    store_ = value_of(GetParam().open(dir_.path(), clock_, options));
  }

  Store& store() { return *store_; }

  std::string sync(const ExperimentConfig& config) {
    expect_ok(store().sync_grid(Grid(config)));
    return config.experiment_name;
  }

  std::string new_worker(const std::string& host = "host-a") {
    return value_of(store().register_worker(worker_on(host))).id;
  }

  Lease claim(const std::string& worker_id) {
    ClaimOutcome outcome = value_of(store().claim_next_trial(worker_id));
    if (!outcome.lease) throw std::runtime_error("nothing to claim");
    return *outcome.lease;
  }

  FakeClock clock_;
  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, ClaimLeasesTheLowestIndexPendingTrial) {
  ExperimentConfig config = config_over("exp", {7, 8, 9});
  sync(config);
  std::string worker = new_worker();

  ClaimOutcome outcome = value_of(store().claim_next_trial(worker));

  ASSERT_TRUE(outcome.lease.has_value());
  const Lease& lease = *outcome.lease;
  EXPECT_EQ(lease.trial_id, Grid(config).id_at(0));
  EXPECT_EQ(lease.experiment, "exp");
  EXPECT_EQ(lease.hyperparameters, nlohmann::json({{"x", 7}}));
  EXPECT_EQ(lease.attempt, 1);
  EXPECT_EQ(lease.lease_token.size(), 32u);
  EXPECT_EQ(lease.lease_expires_ms, clock_.now_ms() + kLeaseMs);
  EXPECT_EQ(outcome.pending, 2);
  EXPECT_EQ(outcome.running, 1);

  TrialRecord trial = value_of(store().get_trial(lease.trial_id));
  EXPECT_EQ(trial.state, TrialState::kRunning);
  EXPECT_EQ(trial.attempts, 1);
  EXPECT_EQ(trial.worker_id, worker);
  EXPECT_EQ(trial.started_ms, clock_.now_ms());
  EXPECT_EQ(trial.lease_expires_ms, lease.lease_expires_ms);
  EXPECT_EQ(worker_record(store(), worker).current_trial, lease.trial_id);

  EXPECT_EQ(claim(worker).trial_id, Grid(config).id_at(1));
}

TEST_P(StoreTest, AClaimSentAgainWithItsIdGetsTheSameLeaseWhileItIsLive) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  sync(config);
  std::string worker = new_worker();
  std::string other_worker = new_worker();

  ClaimOutcome first = value_of(store().claim_next_trial(worker, "claim-1"));
  ASSERT_TRUE(first.lease.has_value());
  EXPECT_FALSE(first.resumed);
  clock_.advance_ms(1'000);
  // Its answer was lost; the worker sends the same claim again.
  ClaimOutcome again = value_of(store().claim_next_trial(worker, "claim-1"));
  ASSERT_TRUE(again.lease.has_value());
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.lease->trial_id, first.lease->trial_id);
  EXPECT_EQ(again.lease->lease_token, first.lease->lease_token);
  EXPECT_EQ(again.lease->attempt, 1);
  EXPECT_EQ(again.lease->hyperparameters, first.lease->hyperparameters);
  EXPECT_EQ(again.lease->lease_expires_ms, clock_.now_ms() + kLeaseMs);
  EXPECT_EQ(again.running, 1);
  EXPECT_EQ(again.pending, 2);
  TrialRecord trial = value_of(store().get_trial(first.lease->trial_id));
  EXPECT_EQ(trial.attempts, 1);
  EXPECT_EQ(trial.lease_expires_ms, again.lease->lease_expires_ms);
  EXPECT_EQ(value_of(store().list_attempts(trial.id)).size(), 1u);

  // Only that worker's own claim id, and only its last one, resumes.
  Lease others = *value_of(store().claim_next_trial(other_worker, "claim-1")).lease;
  EXPECT_NE(others.trial_id, first.lease->trial_id);
  expect_ok(store().complete(first.lease->trial_id, first.lease->lease_token, {{"loss", 1}}));
  ClaimOutcome after_done = value_of(store().claim_next_trial(worker, "claim-1"));
  ASSERT_TRUE(after_done.lease.has_value());
  EXPECT_FALSE(after_done.resumed);
  EXPECT_EQ(after_done.lease->trial_id, Grid(config).id_at(2));

  // An expired lease is not resumed: it is requeued, and the claim counts a new attempt.
  clock_.advance_ms(kLeaseMs + 1);
  ClaimOutcome after_expiry = value_of(store().claim_next_trial(worker, "claim-1"));
  ASSERT_TRUE(after_expiry.lease.has_value());
  EXPECT_FALSE(after_expiry.resumed);
  EXPECT_EQ(after_expiry.lease->attempt, 2);
  EXPECT_NE(after_expiry.lease->lease_token, after_done.lease->lease_token);
}

TEST_P(StoreTest, CompleteAndClaimEndsOneTrialAndLeasesTheNextInOneCall) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  sync(config);
  std::string worker = new_worker();
  Lease first = claim(worker);
  clock_.advance_ms(500);

  ClaimOutcome next = value_of(
      store().complete_and_claim(first.trial_id, first.lease_token, {{"loss", 1}}, "next-1"));
  ASSERT_TRUE(next.lease.has_value());
  EXPECT_FALSE(next.resumed);
  EXPECT_EQ(next.lease->trial_id, Grid(config).id_at(1));
  EXPECT_EQ(next.lease->attempt, 1);
  EXPECT_EQ(next.done, 1);
  EXPECT_EQ(next.running, 1);
  EXPECT_EQ(next.pending, 1);
  TrialRecord done = value_of(store().get_trial(first.trial_id));
  EXPECT_EQ(done.state, TrialState::kDone);
  EXPECT_EQ(done.results, nlohmann::json({{"loss", 1}}));
  EXPECT_EQ(value_of(store().list_attempts(first.trial_id)).back().outcome, "done");
  WorkerRecord record = worker_record(store(), worker);
  EXPECT_EQ(record.current_trial, next.lease->trial_id);
  EXPECT_EQ(record.trials_done, 1);

  // Its answer was lost: sent again, the completion is refused as done, and the claim with
  // the same id gets the lease the first call made.
  EXPECT_TRUE(
      IsError(store()
                  .complete_and_claim(first.trial_id, first.lease_token, {{"loss", 1}}, "next-1")
                  .status(),
              Code::kConflict, "already done"));
  ClaimOutcome again = value_of(store().claim_next_trial(worker, "next-1"));
  ASSERT_TRUE(again.lease.has_value());
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.lease->lease_token, next.lease->lease_token);

  // A refused completion claims nothing.
  EXPECT_TRUE(IsError(
      store().complete_and_claim(next.lease->trial_id, "wrong-token", {}, "next-2").status(),
      Code::kConflict, "does not match"));
  EXPECT_EQ(value_of(store().get_trial(Grid(config).id_at(2))).state, TrialState::kPending);

  ClaimOutcome third = value_of(
      store().complete_and_claim(next.lease->trial_id, next.lease->lease_token, {}, "next-3"));
  ASSERT_TRUE(third.lease.has_value());
  ClaimOutcome last = value_of(
      store().complete_and_claim(third.lease->trial_id, third.lease->lease_token, {}, "next-4"));
  EXPECT_FALSE(last.lease.has_value());
  EXPECT_EQ(last.done, 3);
  EXPECT_EQ(last.pending + last.running, 0);
  EXPECT_EQ(worker_record(store(), worker).current_trial, std::nullopt);
  EXPECT_EQ(worker_record(store(), worker).trials_done, 3);
}

TEST_P(StoreTest, ClaimWithNothingPendingReturnsNoLease) {
  std::string worker = new_worker();
  ClaimOutcome before_any_grid = value_of(store().claim_next_trial(worker));
  EXPECT_FALSE(before_any_grid.lease.has_value());
  EXPECT_EQ(before_any_grid.pending, 0);
  EXPECT_EQ(before_any_grid.running, 0);

  sync(config_over("exp", {1}));
  Lease lease = claim(worker);
  ClaimOutcome while_running = value_of(store().claim_next_trial(worker));
  EXPECT_FALSE(while_running.lease.has_value());
  EXPECT_EQ(while_running.pending, 0);
  EXPECT_EQ(while_running.running, 1);

  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 0.5}}));
  ClaimOutcome all_done = value_of(store().claim_next_trial(worker));
  EXPECT_FALSE(all_done.lease.has_value());
  EXPECT_EQ(all_done.pending, 0);
  EXPECT_EQ(all_done.running, 0);
}

TEST_P(StoreTest, CompleteRecordsResultsMetricsAndModel) {
  sync(config_over("exp", {1, 2}));
  std::string worker = new_worker();
  Lease lease = claim(worker);
  clock_.advance_ms(100);

  HeartbeatReply reply = value_of(store().heartbeat(lease.trial_id, lease.lease_token));
  EXPECT_FALSE(reply.stop_requested);
  expect_ok(store().add_metrics(lease.trial_id, lease.lease_token,
                                {MetricPoint{1, clock_.now_ms(), {{"loss", 0.9}}},
                                 MetricPoint{std::nullopt, clock_.now_ms() + 1, {{"acc", 0.1}}}}));
  expect_ok(store().add_metrics(lease.trial_id, lease.lease_token,
                                {MetricPoint{2, clock_.now_ms() + 2, {{"loss", 0.4}}}}));
  expect_ok(store().check_lease(lease.trial_id, lease.lease_token));
  expect_ok(store().attach_model(lease.trial_id, lease.lease_token, ModelInfo{"ab12", 2048}));
  clock_.advance_ms(100);
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 0.4}}));

  TrialRecord trial = value_of(store().get_trial(lease.trial_id));
  EXPECT_EQ(trial.state, TrialState::kDone);
  EXPECT_EQ(trial.results, nlohmann::json({{"loss", 0.4}}));
  EXPECT_EQ(trial.finished_ms, clock_.now_ms());
  EXPECT_EQ(trial.attempts, 1);
  EXPECT_EQ(trial.worker_id, worker);
  EXPECT_FALSE(trial.lease_expires_ms.has_value());
  ASSERT_TRUE(trial.model.has_value());
  EXPECT_EQ(trial.model->sha256, "ab12");
  EXPECT_EQ(trial.model->size_bytes, 2048);

  std::vector<MetricPoint> metrics = value_of(store().list_metrics(lease.trial_id));
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0].step, 1);
  EXPECT_EQ(metrics[0].values, nlohmann::json({{"loss", 0.9}}));
  EXPECT_FALSE(metrics[1].step.has_value());
  EXPECT_EQ(metrics[1].time_ms, metrics[0].time_ms + 1);
  EXPECT_EQ(metrics[2].step, 2);

  WorkerRecord record = worker_record(store(), worker);
  EXPECT_EQ(record.trials_done, 1);
  EXPECT_EQ(record.trials_failed, 0);
  EXPECT_FALSE(record.current_trial.has_value());
  EXPECT_EQ(record.last_seen_ms, clock_.now_ms());

  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_TRUE(summary.active);
  EXPECT_EQ(summary.pending, 1);
  EXPECT_EQ(summary.done, 1);
  EXPECT_EQ(summary.total(), 2);
}

TEST_P(StoreTest, EveryLeaseCallIsRefusedOnceTheTrialIsDone) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 1}}));

  const std::string& id = lease.trial_id;
  const std::string& token = lease.lease_token;
  EXPECT_TRUE(IsError(store().heartbeat(id, token).status(), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().add_metrics(id, token, {}), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().check_lease(id, token), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().attach_model(id, token, {}), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().complete(id, token, {}), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().fail(id, token, "e", "t"), Code::kConflict, "already done"));
  EXPECT_TRUE(IsError(store().release(id, token), Code::kConflict, "already done"));
  EXPECT_EQ(value_of(store().get_trial(id)).results, nlohmann::json({{"loss", 1}}));
}

TEST_P(StoreTest, FailIsFinalAndNeverRetried) {
  ExperimentConfig config = config_over("exp", {1, 2});
  sync(config);
  std::string worker = new_worker();
  Lease first = claim(worker);

  expect_ok(store().fail(first.trial_id, first.lease_token, "ValueError: bad lr",
                         "Traceback (most recent call last): ..."));

  TrialRecord failed = value_of(store().get_trial(first.trial_id));
  EXPECT_EQ(failed.state, TrialState::kFailed);
  EXPECT_EQ(failed.error, "ValueError: bad lr");
  EXPECT_EQ(failed.traceback, "Traceback (most recent call last): ...");
  EXPECT_EQ(failed.finished_ms, clock_.now_ms());
  EXPECT_TRUE(IsError(store().complete(first.trial_id, first.lease_token, {}), Code::kConflict,
                      "already failed"));

  Lease second = claim(worker);
  EXPECT_EQ(second.trial_id, Grid(config).id_at(1));
  expect_ok(store().complete(second.trial_id, second.lease_token, {}));
  EXPECT_FALSE(value_of(store().claim_next_trial(worker)).lease.has_value());

  WorkerRecord record = worker_record(store(), worker);
  EXPECT_EQ(record.trials_failed, 1);
  EXPECT_EQ(record.trials_done, 1);
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_EQ(summary.failed, 1);
  EXPECT_EQ(summary.done, 1);
}

TEST_P(StoreTest, ReleaseGivesTheClaimBackWithoutCountingAnAttempt) {
  sync(config_over("exp", {1}));
  std::string worker = new_worker();
  Lease first = claim(worker);

  expect_ok(store().release(first.trial_id, first.lease_token));

  TrialRecord released = value_of(store().get_trial(first.trial_id));
  EXPECT_EQ(released.state, TrialState::kPending);
  EXPECT_EQ(released.attempts, 0);
  EXPECT_FALSE(released.worker_id.has_value());
  EXPECT_FALSE(released.lease_expires_ms.has_value());
  EXPECT_FALSE(worker_record(store(), worker).current_trial.has_value());
  EXPECT_TRUE(IsError(store().heartbeat(first.trial_id, first.lease_token).status(),
                      Code::kConflict, "released"));

  Lease again = claim(worker);
  EXPECT_EQ(again.trial_id, first.trial_id);
  EXPECT_EQ(again.attempt, 1);
  EXPECT_NE(again.lease_token, first.lease_token);
  EXPECT_TRUE(IsError(store().complete(first.trial_id, first.lease_token, {}), Code::kConflict,
                      "released"));
}

TEST_P(StoreTest, HeartbeatExtendsTheLease) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());

  clock_.advance_ms(kLeaseMs - 1);
  HeartbeatReply reply = value_of(store().heartbeat(lease.trial_id, lease.lease_token));
  EXPECT_EQ(reply.lease_expires_ms, clock_.now_ms() + kLeaseMs);
  EXPECT_EQ(value_of(store().get_trial(lease.trial_id)).lease_expires_ms, reply.lease_expires_ms);

  clock_.advance_ms(kLeaseMs - 1);  // well past the first expiry
  EXPECT_EQ(value_of(store().requeue_expired()), 0);
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 2}}));
}

TEST_P(StoreTest, ExpiredLeasesAreRequeuedThenFailedAfterMaxAttempts) {
  sync(config_over("exp", {1}));
  std::string worker = new_worker("gpu-box-7");

  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    Lease lease = claim(worker);
    EXPECT_EQ(lease.attempt, attempt);
    clock_.advance_ms(kLeaseMs - 1);
    EXPECT_EQ(value_of(store().requeue_expired()), 0) << "not expired yet";
    clock_.advance_ms(1);
    EXPECT_EQ(value_of(store().requeue_expired()), 1);

    TrialRecord trial = value_of(store().get_trial(lease.trial_id));
    EXPECT_EQ(trial.attempts, attempt);
    EXPECT_FALSE(trial.lease_expires_ms.has_value());
    EXPECT_FALSE(worker_record(store(), worker).current_trial.has_value());
    if (attempt < kMaxAttempts) {
      EXPECT_EQ(trial.state, TrialState::kPending);
    } else {
      EXPECT_EQ(trial.state, TrialState::kFailed);
      ASSERT_TRUE(trial.error.has_value());
      EXPECT_EQ(*trial.error, "lease expired 3 times (last worker " + worker +
                                  " on gpu-box-7); giving up after --max-attempts=3");
    }
  }
  ClaimOutcome outcome = value_of(store().claim_next_trial(worker));
  EXPECT_FALSE(outcome.lease.has_value());
  EXPECT_EQ(outcome.pending, 0);
  EXPECT_EQ(outcome.running, 0);
  EXPECT_EQ(summary_of(store(), "exp").failed, 1);
}

TEST_P(StoreTest, ALostExecutorRequeuesAtOnceCountingTheAttemptThenFailsAfterMaxAttempts) {
  sync(config_over("exp", {1}));
  std::string worker = new_worker();
  const std::string reason = "the executor running experiment.py killed by signal 9 (SIGKILL)";

  for (int attempt = 1; attempt <= kMaxAttempts; ++attempt) {
    Lease lease = claim(worker);
    EXPECT_EQ(lease.attempt, attempt) << "a lost attempt counts, unlike a release";
    TrialState state = value_of(store().requeue_lost(lease.trial_id, lease.lease_token, reason));
    TrialRecord trial = value_of(store().get_trial(lease.trial_id));
    EXPECT_EQ(trial.state, state);
    EXPECT_FALSE(trial.lease_expires_ms.has_value());
    EXPECT_FALSE(worker_record(store(), worker).current_trial.has_value());
    EXPECT_TRUE(IsError(store().heartbeat(lease.trial_id, lease.lease_token).status(),
                        Code::kConflict,
                        attempt < kMaxAttempts ? "lost the trial's executor" : "already failed"));
    if (attempt < kMaxAttempts) {
      EXPECT_EQ(state, TrialState::kPending) << "no wait for the lease to run out";
      EXPECT_FALSE(trial.worker_id.has_value());
    } else {
      EXPECT_EQ(state, TrialState::kFailed);
      EXPECT_EQ(trial.error, reason + " (attempt 3); giving up after --max-attempts=3");
    }
  }
  std::vector<AttemptRecord> attempts =
      value_of(store().list_attempts(value_of(store().list_trials("exp")).at(0).id));
  ASSERT_EQ(attempts.size(), 3u);
  for (const AttemptRecord& attempt : attempts) {
    EXPECT_EQ(attempt.outcome, "lost");
    EXPECT_EQ(attempt.error, reason);
  }
  EXPECT_EQ(summary_of(store(), "exp").failed, 1);
  EXPECT_EQ(worker_record(store(), worker).trials_failed, 1);
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, ALostExecutorOfACancelledTrialEndsItCancelled) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());
  EXPECT_EQ(value_of(store().cancel_trials({"exp", std::nullopt})).size(), 1u);
  EXPECT_EQ(value_of(store().requeue_lost(lease.trial_id, lease.lease_token, "killed")),
            TrialState::kCancelled);
  EXPECT_EQ(value_of(store().get_trial(lease.trial_id)).state, TrialState::kCancelled);
  EXPECT_TRUE(IsError(store().requeue_lost(lease.trial_id, lease.lease_token, "killed").status(),
                      Code::kConflict, "cancelled"));
}

TEST_P(StoreTest, ClaimRequeuesExpiredLeasesFirst) {
  sync(config_over("exp", {1, 2}));
  std::string worker = new_worker();
  Lease first = claim(worker);
  clock_.advance_ms(kLeaseMs);

  Lease again = claim(worker);

  EXPECT_EQ(again.trial_id, first.trial_id);
  EXPECT_EQ(again.attempt, 2);
}

TEST_P(StoreTest, LateWorkerIsFencedOutOnceTheTrialIsReLeased) {
  sync(config_over("exp", {1}));
  std::string worker_a = new_worker("host-a");
  std::string worker_b = new_worker("host-b");
  Lease lease_a = claim(worker_a);
  clock_.advance_ms(kLeaseMs + 1);
  Lease lease_b = claim(worker_b);
  ASSERT_EQ(lease_b.trial_id, lease_a.trial_id);
  EXPECT_EQ(lease_b.attempt, 2);

  const std::string& id = lease_a.trial_id;
  const std::string& stale = lease_a.lease_token;
  const char* why = "re-leased to another worker";
  EXPECT_TRUE(IsError(store().heartbeat(id, stale).status(), Code::kConflict, why));
  EXPECT_TRUE(IsError(store().add_metrics(id, stale, {MetricPoint{1, 0, {{"loss", 9}}}}),
                      Code::kConflict, why));
  EXPECT_TRUE(IsError(store().check_lease(id, stale), Code::kConflict, why));
  EXPECT_TRUE(IsError(store().attach_model(id, stale, {"ff", 1}), Code::kConflict, why));
  EXPECT_TRUE(IsError(store().complete(id, stale, {{"by", "a"}}), Code::kConflict, why));
  EXPECT_TRUE(IsError(store().fail(id, stale, "e", "t"), Code::kConflict, why));
  EXPECT_TRUE(IsError(store().release(id, stale), Code::kConflict, why));

  expect_ok(store().complete(id, lease_b.lease_token, {{"by", "b"}}));
  TrialRecord trial = value_of(store().get_trial(id));
  EXPECT_EQ(trial.state, TrialState::kDone);
  EXPECT_EQ(trial.results, nlohmann::json({{"by", "b"}}));
  EXPECT_EQ(trial.worker_id, worker_b);
  EXPECT_EQ(trial.attempts, 2);
  EXPECT_FALSE(trial.model.has_value());
  EXPECT_TRUE(value_of(store().list_metrics(id)).empty());
  EXPECT_EQ(worker_record(store(), worker_a).trials_done, 0);
  EXPECT_EQ(worker_record(store(), worker_b).trials_done, 1);
  EXPECT_TRUE(IsError(store().complete(id, stale, {}), Code::kConflict, "already done"));
}

TEST_P(StoreTest, CallsAfterTheExpiryTimeAreRefusedBeforeAnyRequeue) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());
  clock_.advance_ms(kLeaseMs);  // the expiry instant itself is past the lease

  const std::string& id = lease.trial_id;
  const std::string& token = lease.lease_token;
  EXPECT_TRUE(IsError(store().complete(id, token, {}), Code::kConflict, "lease expired"));
  EXPECT_TRUE(IsError(store().heartbeat(id, token).status(), Code::kConflict, "lease expired"));
  EXPECT_TRUE(IsError(store().check_lease(id, token), Code::kConflict, "lease expired"));
  EXPECT_EQ(value_of(store().get_trial(id)).state, TrialState::kRunning);

  EXPECT_EQ(value_of(store().requeue_expired()), 1);
  EXPECT_TRUE(IsError(store().complete(id, token, {}), Code::kConflict, "lease expired"));
  EXPECT_EQ(value_of(store().get_trial(id)).state, TrialState::kPending);
}

TEST_P(StoreTest, WrongTokenIsAConflict) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());

  EXPECT_TRUE(IsError(store().complete(lease.trial_id, "0123456789abcdef0123456789abcdef", {}),
                      Code::kConflict, "does not match"));
  EXPECT_TRUE(
      IsError(store().heartbeat(lease.trial_id, "").status(), Code::kConflict, "does not match"));
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {}));
}

TEST_P(StoreTest, UnknownTrialOrWorkerIsNotFound) {
  sync(config_over("exp", {1}));
  const std::string missing = "0000000000000000";
  const std::string no_trial = "no trial " + missing;

  EXPECT_TRUE(
      IsError(store().claim_next_trial("nobody").status(), Code::kNotFound, "no worker nobody"));
  EXPECT_TRUE(IsError(store().heartbeat(missing, "t").status(), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().add_metrics(missing, "t", {}), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().check_lease(missing, "t"), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().attach_model(missing, "t", {}), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().complete(missing, "t", {}), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().fail(missing, "t", "e", "t"), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().release(missing, "t"), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().get_trial(missing).status(), Code::kNotFound, no_trial));
  EXPECT_TRUE(IsError(store().list_metrics(missing).status(), Code::kNotFound, no_trial));
  EXPECT_TRUE(
      IsError(store().list_trials("other").status(), Code::kNotFound, "no experiment other"));
}

TEST_P(StoreTest, MetricValuesMustBeAnObject) {
  sync(config_over("exp", {1}));
  Lease lease = claim(new_worker());
  EXPECT_TRUE(IsError(store().add_metrics(lease.trial_id, lease.lease_token,
                                          {MetricPoint{1, 0, nlohmann::json::array({1})}}),
                      Code::kInvalidArgument, "object"));
  EXPECT_TRUE(value_of(store().list_metrics(lease.trial_id)).empty());
}

TEST_P(StoreTest, RegisteredWorkersAreListed) {
  WorkerRecord registered = value_of(store().register_worker(worker_on("host-a")));
  clock_.advance_ms(5);
  std::string second = new_worker("host-b");

  std::vector<WorkerRecord> workers = value_of(store().list_workers());
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].id, registered.id);
  EXPECT_EQ(workers[0].info.host, "host-a");
  EXPECT_EQ(workers[0].info.pid, 4242);
  EXPECT_EQ(workers[0].info.devices, nlohmann::json::array({"cuda:0"}));
  EXPECT_EQ(workers[0].info.version, "0.1.0");
  EXPECT_EQ(workers[0].first_seen_ms, registered.first_seen_ms);
  EXPECT_EQ(workers[1].id, second);
  EXPECT_NE(registered.id, second);

  sync(config_over("exp", {1}));
  clock_.advance_ms(5);
  Lease lease = claim(registered.id);
  WorkerRecord after_claim = worker_record(store(), registered.id);
  EXPECT_EQ(after_claim.last_seen_ms, clock_.now_ms());
  EXPECT_EQ(after_claim.first_seen_ms, registered.first_seen_ms);
  EXPECT_EQ(after_claim.current_trial, lease.trial_id);
}

TEST_P(StoreTest, AWorkersSlurmPlacementIsListedAndNoneStaysNone) {
  WorkerInfo in_slurm = worker_on("node01");
  in_slurm.slurm = nlohmann::json{{"job_id", "77"},
                                  {"array_job_id", nullptr},
                                  {"array_task_id", nullptr},
                                  {"node_list", "node[01-02]"},
                                  {"restart_count", 3}};
  std::string slurm_worker = value_of(store().register_worker(in_slurm)).id;
  std::string plain_worker = new_worker("laptop");
  EXPECT_EQ(worker_record(store(), slurm_worker).info.slurm, in_slurm.slurm);
  EXPECT_EQ(worker_record(store(), plain_worker).info.slurm, std::nullopt);
}

TEST_P(StoreTest, ConcurrentClaimsHandOutEveryTrialExactlyOnce) {
  constexpr int kPoints = 2'000;
  constexpr int kThreads = 16;
  sync(config_with_points("exp", kPoints));

  std::vector<std::vector<std::string>> claimed(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &claimed, &errors] {
      Result<WorkerRecord> worker = store().register_worker(worker_on("host"));
      if (!worker) {
        ++errors;
        return;
      }
      for (;;) {
        Result<ClaimOutcome> outcome = store().claim_next_trial(worker->id);
        if (!outcome) {
          ++errors;
          return;
        }
        if (!outcome->lease) return;
        const Lease& lease = *outcome->lease;
        claimed[static_cast<std::size_t>(t)].push_back(lease.trial_id);
        if (!store().complete(lease.trial_id, lease.lease_token, {{"thread", t}})) ++errors;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(errors.load(), 0);
  std::multiset<std::string> all;
  for (const auto& ids : claimed) all.insert(ids.begin(), ids.end());
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kPoints));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size())
      << "a trial was handed out twice";
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_EQ(summary.done, kPoints);
  EXPECT_EQ(summary.total(), kPoints);
  for (const TrialRecord& trial : value_of(store().list_trials("exp"))) {
    EXPECT_EQ(trial.attempts, 1);
  }
}

TEST_P(StoreTest, EditedConfigKeepsExistingTrialsAndRetiresRemovedOnes) {
  sync(config_over("exp", {1, 2, 3, 4}));
  std::string worker = new_worker();
  Lease done = claim(worker);
  expect_ok(store().complete(done.trial_id, done.lease_token, {{"loss", 0.1}}));
  Lease running = claim(worker);
  ASSERT_EQ(done.trial_id, id_of("exp", 1));
  ASSERT_EQ(running.trial_id, id_of("exp", 2));

  sync(config_over("exp", {2, 3, 5}));  // 1 and 4 removed, 5 added

  std::map<std::string, TrialRecord> trials;
  for (TrialRecord& trial : value_of(store().list_trials("exp"))) trials[trial.id] = trial;
  ASSERT_EQ(trials.size(), 5u);
  const TrialRecord& removed_done = trials[id_of("exp", 1)];
  EXPECT_FALSE(removed_done.in_config);
  EXPECT_EQ(removed_done.state, TrialState::kDone);
  EXPECT_EQ(removed_done.results, nlohmann::json({{"loss", 0.1}}));
  const TrialRecord& kept_running = trials[id_of("exp", 2)];
  EXPECT_TRUE(kept_running.in_config);
  EXPECT_EQ(kept_running.grid_index, 0u);
  EXPECT_EQ(kept_running.state, TrialState::kRunning);
  EXPECT_EQ(trials[id_of("exp", 3)].grid_index, 1u);
  EXPECT_FALSE(trials[id_of("exp", 4)].in_config);
  EXPECT_EQ(trials[id_of("exp", 4)].state, TrialState::kPending);
  const TrialRecord& added = trials[id_of("exp", 5)];
  EXPECT_TRUE(added.in_config);
  EXPECT_EQ(added.grid_index, 2u);
  EXPECT_EQ(added.state, TrialState::kPending);
  EXPECT_EQ(added.hyperparameters, nlohmann::json({{"x", 5}}));

  ExperimentSummary summary = summary_of(store(), "exp");  // in-config trials only
  EXPECT_EQ(summary.pending, 2);
  EXPECT_EQ(summary.running, 1);
  EXPECT_EQ(summary.done, 0);

  expect_ok(store().complete(running.trial_id, running.lease_token, {{"loss", 0.2}}));
  EXPECT_EQ(claim(worker).trial_id, id_of("exp", 3));
  EXPECT_EQ(claim(worker).trial_id, id_of("exp", 5));
  EXPECT_FALSE(value_of(store().claim_next_trial(worker)).lease.has_value())
      << "a point removed from the config was handed out";
}

TEST_P(StoreTest, SwitchingExperimentsDeactivatesThePreviousOne) {
  sync(config_over("alpha", {1, 2, 3}));
  std::string worker = new_worker();
  Lease alpha_first = claim(worker);
  expect_ok(store().complete(alpha_first.trial_id, alpha_first.lease_token, {{"loss", 1}}));

  sync(config_over("beta", {1, 2}));

  std::vector<ExperimentSummary> summaries = value_of(store().list_experiments());
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].name, "alpha");
  EXPECT_FALSE(summaries[0].active);
  EXPECT_EQ(summaries[0].pending, 2);  // every trial of an inactive experiment
  EXPECT_EQ(summaries[0].done, 1);
  EXPECT_EQ(summaries[1].name, "beta");
  EXPECT_TRUE(summaries[1].active);
  EXPECT_EQ(summaries[1].pending, 2);
  for (const TrialRecord& trial : value_of(store().list_trials("alpha"))) {
    EXPECT_FALSE(trial.in_config);
  }
  EXPECT_EQ(claim(worker).experiment, "beta");
  EXPECT_EQ(claim(worker).experiment, "beta");
  EXPECT_FALSE(value_of(store().claim_next_trial(worker)).lease.has_value());

  sync(config_over("alpha", {1, 2, 3}));

  EXPECT_TRUE(summary_of(store(), "alpha").active);
  EXPECT_FALSE(summary_of(store(), "beta").active);
  EXPECT_EQ(value_of(store().get_trial(alpha_first.trial_id)).state, TrialState::kDone);
  EXPECT_EQ(claim(worker).trial_id, id_of("alpha", 2));
}

TEST_P(StoreTest, RunningTrialRemovedFromTheConfigMayStillComplete) {
  sync(config_over("exp", {1, 2}));
  std::string worker = new_worker();
  Lease lease = claim(worker);

  sync(config_over("exp", {2}));
  EXPECT_EQ(summary_of(store(), "exp").running, 0);
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 1}}));

  TrialRecord trial = value_of(store().get_trial(lease.trial_id));
  EXPECT_EQ(trial.state, TrialState::kDone);
  EXPECT_FALSE(trial.in_config);
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_EQ(summary.done, 0);
  EXPECT_EQ(summary.pending, 1);
}

TEST_P(StoreTest, SummariesAgreeWithTheTrialsThroughEveryTransition) {
  sync(config_over("alpha", {1, 2, 3, 4, 5, 6}));
  std::string worker = new_worker();
  Lease done = claim(worker);
  expect_ok(store().complete(done.trial_id, done.lease_token, {}));
  Lease failed = claim(worker);
  expect_ok(store().fail(failed.trial_id, failed.lease_token, "e", "t"));
  Lease released = claim(worker);
  expect_ok(store().release(released.trial_id, released.lease_token));
  claim(worker);
  claim(worker);
  expect_summaries_match_trials(store());

  clock_.advance_ms(kLeaseMs);
  EXPECT_EQ(value_of(store().requeue_expired()), 2);
  Lease running = claim(worker);
  expect_summaries_match_trials(store());

  sync(config_over("alpha", {0, 2, 4, 6, 8}));
  expect_summaries_match_trials(store());
  sync(config_over("beta", {1, 2}));
  claim(worker);
  expect_summaries_match_trials(store());
  sync(config_over("alpha", {1, 2, 3}));
  expect_ok(store().complete(running.trial_id, running.lease_token, {}));
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, SyncingTheSameGridTwiceIsIdempotent) {
  constexpr int kPoints = 1'000;
  ExperimentConfig config = config_with_points("exp", kPoints);
  Grid grid(config);
  sync(config);
  Lease lease = claim(new_worker());
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 3}}));

  sync(config);

  std::vector<TrialRecord> trials = value_of(store().list_trials("exp"));
  ASSERT_EQ(trials.size(), static_cast<std::size_t>(kPoints));
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    const TrialRecord& trial = trials[index];
    EXPECT_EQ(trial.id, grid.id_at(index));
    EXPECT_EQ(trial.grid_index, index);
    EXPECT_TRUE(trial.in_config);
    EXPECT_EQ(trial.hyperparameters, grid.hyperparameters_at(index));
    EXPECT_EQ(trial.state, index == 0 ? TrialState::kDone : TrialState::kPending);
  }
  EXPECT_EQ(trials[0].results, nlohmann::json({{"loss", 3}}));
  std::vector<ExperimentSummary> summaries = value_of(store().list_experiments());
  ASSERT_EQ(summaries.size(), 1u);
  EXPECT_EQ(summaries[0].pending, kPoints - 1);
  EXPECT_EQ(summaries[0].done, 1);
}

// --- A user's retry and cancel, the attempt history, durations ---

TEST_P(StoreTest, CancelAPendingTrialEndsItAtOnceAndItIsNeverHandedOut) {
  ExperimentConfig config = config_over("exp", {1, 2});
  sync(config);
  std::string first = Grid(config).id_at(0);
  std::vector<std::string> changed =
      value_of(store().cancel_trials({"exp", std::vector<std::string>{first}}));
  EXPECT_EQ(changed, std::vector<std::string>{first});
  TrialRecord trial = value_of(store().get_trial(first));
  EXPECT_EQ(trial.state, TrialState::kCancelled);
  EXPECT_EQ(trial.error, "cancelled by the user");
  EXPECT_EQ(trial.finished_ms, clock_.now_ms());
  std::string worker = new_worker();
  EXPECT_EQ(claim(worker).trial_id, Grid(config).id_at(1));
  EXPECT_FALSE(value_of(store().claim_next_trial(worker)).lease.has_value());
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_EQ(summary.cancelled, 1);
  EXPECT_EQ(summary.running, 1);
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, CancelARunningTrialAsksItToStopThenItEndsCancelledWhateverTheWorkerSays) {
  sync(config_over("exp", {1, 2, 3, 4}));
  std::string worker = new_worker();
  Lease completing = claim(worker);
  Lease failing = claim(worker);
  Lease releasing = claim(worker);
  Lease expiring = claim(worker);
  std::vector<std::string> changed = value_of(store().cancel_trials({"exp", std::nullopt}));
  EXPECT_EQ(changed.size(), 4u);
  // Asked twice: nothing more to change.
  EXPECT_TRUE(value_of(store().cancel_trials({"exp", std::nullopt})).empty());
  EXPECT_TRUE(
      value_of(store().heartbeat(completing.trial_id, completing.lease_token)).stop_requested);
  EXPECT_EQ(value_of(store().get_trial(completing.trial_id)).state, TrialState::kRunning);

  expect_ok(store().complete(completing.trial_id, completing.lease_token, {{"loss", 0.5}}));
  expect_ok(store().fail(failing.trial_id, failing.lease_token, "KeyboardInterrupt: stop", "tb"));
  expect_ok(store().release(releasing.trial_id, releasing.lease_token));
  clock_.advance_ms(kLeaseMs + 1);
  EXPECT_EQ(value_of(store().requeue_expired()), 1);

  TrialRecord completed = value_of(store().get_trial(completing.trial_id));
  EXPECT_EQ(completed.state, TrialState::kCancelled);
  EXPECT_EQ(completed.results, nlohmann::json({{"loss", 0.5}}));  // partial results stay
  TrialRecord failed = value_of(store().get_trial(failing.trial_id));
  EXPECT_EQ(failed.state, TrialState::kCancelled);
  EXPECT_NE(failed.error->find("KeyboardInterrupt: stop"), std::string::npos);
  EXPECT_EQ(value_of(store().get_trial(releasing.trial_id)).state, TrialState::kCancelled);
  TrialRecord expired = value_of(store().get_trial(expiring.trial_id));
  EXPECT_EQ(expired.state, TrialState::kCancelled);
  EXPECT_NE(expired.error->find("lease ran out"), std::string::npos);
  for (const Lease& lease : {completing, failing, releasing, expiring}) {
    std::vector<AttemptRecord> attempts = value_of(store().list_attempts(lease.trial_id));
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ(attempts[0].outcome, "cancelled");
  }
  WorkerRecord record = worker_record(store(), worker);
  EXPECT_EQ(record.trials_done, 0);
  EXPECT_EQ(record.trials_failed, 0);
  EXPECT_FALSE(record.current_trial.has_value());
  EXPECT_EQ(summary_of(store(), "exp").cancelled, 4);
  expect_summaries_match_trials(store());
  // A later call with the old lease is refused, saying why.
  EXPECT_TRUE(IsError(store().heartbeat(completing.trial_id, completing.lease_token).status(),
                      Code::kConflict, "cancelled"));
}

TEST_P(StoreTest, CancelSkipsFinishedTrialsAndOtherExperimentsIds) {
  ExperimentConfig config = config_over("exp", {1, 2});
  sync(config);
  std::string worker = new_worker();
  Lease lease = claim(worker);
  expect_ok(store().complete(lease.trial_id, lease.lease_token, {{"loss", 0.5}}));
  std::vector<std::string> changed =
      value_of(store().cancel_trials({"other", std::vector<std::string>{Grid(config).id_at(1)}}));
  EXPECT_TRUE(changed.empty());
  changed = value_of(store().cancel_trials({"exp", std::nullopt}));
  EXPECT_EQ(changed, std::vector<std::string>{Grid(config).id_at(1)});
  EXPECT_EQ(value_of(store().get_trial(lease.trial_id)).state, TrialState::kDone);
}

TEST_P(StoreTest, RetryTakesFailedAndCancelledTrialsBackToAFreshStart) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  sync(config);
  std::string worker = new_worker();
  Lease failing = claim(worker);
  expect_ok(store().attach_model(failing.trial_id, failing.lease_token, ModelInfo{"ab", 2}));
  expect_ok(store().fail(failing.trial_id, failing.lease_token, "ValueError: no", "tb"));
  Lease done = claim(worker);
  expect_ok(store().complete(done.trial_id, done.lease_token, {{"loss", 0.5}}));
  std::string third = Grid(config).id_at(2);
  value_of(store().cancel_trials({"exp", std::vector<std::string>{third}}));

  std::vector<std::string> changed = value_of(store().retry_trials({"exp", std::nullopt}));
  EXPECT_EQ(changed, (std::vector<std::string>{failing.trial_id, third}));
  TrialRecord retried = value_of(store().get_trial(failing.trial_id));
  EXPECT_EQ(retried.state, TrialState::kPending);
  EXPECT_EQ(retried.attempts, 0);
  EXPECT_FALSE(retried.error.has_value());
  EXPECT_FALSE(retried.traceback.has_value());
  EXPECT_FALSE(retried.model.has_value());
  EXPECT_FALSE(retried.worker_id.has_value());
  EXPECT_FALSE(retried.finished_ms.has_value());
  EXPECT_EQ(value_of(store().get_trial(done.trial_id)).state, TrialState::kDone);
  // The history keeps the failure; the next claim is attempt 1 again.
  Lease again = claim(worker);
  EXPECT_EQ(again.trial_id, failing.trial_id);
  EXPECT_EQ(again.attempt, 1);
  std::vector<AttemptRecord> attempts = value_of(store().list_attempts(failing.trial_id));
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].outcome, "failed");
  EXPECT_EQ(attempts[0].error, "ValueError: no");
  EXPECT_EQ(attempts[1].outcome, "running");
  EXPECT_EQ(attempts[1].attempt, 1);
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, RetryLeavesTrialsNoLongerInTheConfigAlone) {
  ExperimentConfig config = config_over("exp", {1, 2});
  sync(config);
  std::string first = Grid(config).id_at(0);
  value_of(store().cancel_trials({"exp", std::vector<std::string>{first}}));
  sync(config_over("exp", {2}));
  EXPECT_TRUE(value_of(store().retry_trials({"exp", std::vector<std::string>{first}})).empty());
  EXPECT_EQ(value_of(store().get_trial(first)).state, TrialState::kCancelled);
}

TEST_P(StoreTest, AttemptHistoryRecordsEveryClaimInOrder) {
  sync(config_over("exp", {1, 2}));
  std::string worker = new_worker();
  Lease first = claim(worker);
  Lease other = claim(new_worker());  // another trial's history, interleaved with the first's
  clock_.advance_ms(kLeaseMs + 1);
  expect_ok(store().requeue_expired().status());
  Lease second = claim(worker);
  expect_ok(store().release(second.trial_id, second.lease_token));
  Lease third = claim(worker);
  clock_.advance_ms(5);
  expect_ok(store().complete(third.trial_id, third.lease_token, {{"loss", 1}}));

  std::vector<AttemptRecord> attempts = value_of(store().list_attempts(first.trial_id));
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].outcome, "expired");
  EXPECT_EQ(attempts[0].attempt, 1);
  EXPECT_EQ(attempts[1].outcome, "released");
  EXPECT_EQ(attempts[1].attempt, 2);
  EXPECT_EQ(attempts[2].outcome, "done");
  EXPECT_EQ(attempts[2].attempt, 2);  // a release gives the attempt back
  EXPECT_EQ(attempts[2].worker_id, worker);
  EXPECT_EQ(attempts[2].ended_ms, clock_.now_ms());
  std::vector<AttemptRecord> others = value_of(store().list_attempts(other.trial_id));
  ASSERT_EQ(others.size(), 1u);
  EXPECT_EQ(others[0].outcome, "expired");
  EXPECT_TRUE(
      IsError(store().list_attempts("0000000000000000").status(), Code::kNotFound, "no trial"));
}

TEST_P(StoreTest, SummaryHasTheMeanDurationOfDoneTrialsAndWhenRunningOnesStarted) {
  sync(config_over("exp", {1, 2, 3, 4}));
  std::string worker = new_worker();
  EXPECT_FALSE(summary_of(store(), "exp").mean_done_ms.has_value());
  Lease quick = claim(worker);
  clock_.advance_ms(1'000);
  expect_ok(store().complete(quick.trial_id, quick.lease_token, {{"loss", 1}}));
  Lease slow = claim(worker);
  clock_.advance_ms(3'000);
  expect_ok(store().complete(slow.trial_id, slow.lease_token, {{"loss", 1}}));
  Lease failing = claim(worker);
  clock_.advance_ms(9'000);
  expect_ok(store().fail(failing.trial_id, failing.lease_token, "no", ""));  // not counted
  TimeMs started = clock_.now_ms();
  claim(worker);

  ExperimentSummary summary = summary_of(store(), "exp");
  ASSERT_TRUE(summary.mean_done_ms.has_value());
  EXPECT_DOUBLE_EQ(*summary.mean_done_ms, 2'000.0);
  EXPECT_EQ(summary.running_started_ms, std::vector<TimeMs>{started});
}

// --- The config outside hyperparameters, and its generations --------------------------------

ExperimentConfig with_common_config(ExperimentConfig config, const nlohmann::json& common) {
  for (const auto& [key, value] : common.items()) config.document[key] = value;
  return config;
}

TEST_P(StoreTest, RecordedConfigIsWhatTheLastSyncRecorded) {
  EXPECT_FALSE(value_of(store().recorded_config("exp")).has_value());
  ExperimentConfig config = with_common_config(config_over("exp", {1, 2, 3}), {{"data", "a"}});
  sync(config);
  std::optional<RecordedConfig> recorded = value_of(store().recorded_config("exp"));
  ASSERT_TRUE(recorded.has_value());
  EXPECT_EQ(recorded->common_config, R"({"data":"a"})");
  EXPECT_EQ(recorded->config_generation, 0);
  EXPECT_EQ(recorded->trials_not_pending, 0);

  std::string worker = new_worker();
  Lease done = claim(worker);
  expect_ok(store().complete(done.trial_id, done.lease_token, {}));
  claim(worker);  // running
  EXPECT_EQ(value_of(store().recorded_config("exp"))->trials_not_pending, 2);

  expect_ok(store().sync_grid(Grid(with_common_config(config, {{"data", "b"}}), 3)));
  recorded = value_of(store().recorded_config("exp"));
  EXPECT_EQ(recorded->common_config, R"({"data":"b"})");
  EXPECT_EQ(recorded->config_generation, 3);
  EXPECT_EQ(recorded->trials_not_pending, 2);  // earlier generations' trials count too
}

TEST_P(StoreTest, ANewConfigGenerationRunsTheGridAgainKeepingEarlierTrials) {
  ExperimentConfig config = with_common_config(config_over("exp", {1, 2, 3}), {{"data", "a"}});
  sync(config);
  std::string worker = new_worker();
  Lease first = claim(worker);
  expect_ok(store().complete(first.trial_id, first.lease_token, {{"loss", 1}}));

  Grid next(with_common_config(config, {{"data", "b"}}), 1);
  expect_ok(store().sync_grid(next));
  expect_ok(store().sync_grid(next));  // and again, as each restart does: nothing changes

  TrialRecord kept = value_of(store().get_trial(first.trial_id));
  EXPECT_EQ(kept.state, TrialState::kDone);
  EXPECT_EQ(kept.results, nlohmann::json({{"loss", 1}}));
  EXPECT_FALSE(kept.in_config);
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_EQ(summary.pending, 3);
  EXPECT_EQ(summary.done, 0);
  std::set<std::string> handed_out;
  while (std::optional<Lease> lease = value_of(store().claim_next_trial(worker)).lease) {
    handed_out.insert(lease->trial_id);
    expect_ok(store().complete(lease->trial_id, lease->lease_token, {}));
  }
  EXPECT_EQ(handed_out, (std::set<std::string>{next.id_at(0), next.id_at(1), next.id_at(2)}));
  EXPECT_EQ(value_of(store().list_trials("exp")).size(), 6u);
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, SwitchingBackToAnExperimentAtALaterGenerationBringsOnlyItsPointsBack) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  sync(config);
  std::string worker = new_worker();
  Lease first = claim(worker);
  expect_ok(store().complete(first.trial_id, first.lease_token, {}));
  Grid next(config, 1);
  expect_ok(store().sync_grid(next));
  sync(config_over("other", {1}));
  expect_ok(store().sync_grid(next));

  std::set<std::string> in_config;
  for (const TrialRecord& trial : value_of(store().list_trials("exp"))) {
    if (trial.in_config) in_config.insert(trial.id);
  }
  EXPECT_EQ(in_config, (std::set<std::string>{next.id_at(0), next.id_at(1), next.id_at(2)}));
  EXPECT_EQ(summary_of(store(), "exp").pending, 3);
  EXPECT_EQ(summary_of(store(), "exp").done, 0);
  expect_summaries_match_trials(store());
}

TEST_P(StoreTest, AnInterruptedSyncWritesNothing) {
  ExperimentConfig config = with_common_config(config_over("exp", {1, 2, 3}), {{"data", "a"}});
  sync(config);
  std::string worker = new_worker();
  Lease first = claim(worker);
  expect_ok(store().complete(first.trial_id, first.lease_token, {}));

  int asked = 0;
  auto stop_on_second_question = [&] { return ++asked >= 2; };
  // A bigger grid of the same experiment, at a new generation, and a new experiment.
  Status stopped = store().sync_grid(
      Grid(with_common_config(config_with_points("exp", 20'000), {{"data", "b"}}), 1),
      stop_on_second_question);
  EXPECT_TRUE(IsError(stopped, Code::kUnavailable, "interrupted"));
  asked = 0;
  EXPECT_TRUE(
      IsError(store().sync_grid(Grid(config_with_points("new", 20'000)), stop_on_second_question),
              Code::kUnavailable, "interrupted"));

  EXPECT_EQ(value_of(store().list_trials("exp")).size(), 3u);
  EXPECT_EQ(value_of(store().get_trial(first.trial_id)).state, TrialState::kDone);
  EXPECT_TRUE(value_of(store().get_trial(first.trial_id)).in_config);
  std::optional<RecordedConfig> recorded = value_of(store().recorded_config("exp"));
  EXPECT_EQ(recorded->common_config, R"({"data":"a"})");
  EXPECT_EQ(recorded->config_generation, 0);
  EXPECT_FALSE(value_of(store().recorded_config("new")).has_value());
  ExperimentSummary summary = summary_of(store(), "exp");
  EXPECT_TRUE(summary.active);
  EXPECT_EQ(summary.pending, 2);
  EXPECT_EQ(summary.done, 1);
  expect_summaries_match_trials(store());
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreTest,
    ::testing::Values(StoreBackend{"SqliteInMemory",
                                   [](const std::filesystem::path&, const Clock& clock,
                                      StoreOptions options) -> Result<std::unique_ptr<Store>> {
                                     Result<std::unique_ptr<SqliteStore>> store =
                                         SqliteStore::open(":memory:", clock, options);
                                     if (!store) return store.status();
                                     return std::unique_ptr<Store>(std::move(store).value());
                                   }},
                      StoreBackend{"SqliteFile",
                                   [](const std::filesystem::path& dir, const Clock& clock,
                                      StoreOptions options) -> Result<std::unique_ptr<Store>> {
                                     Result<std::unique_ptr<SqliteStore>> store = SqliteStore::open(
                                         (dir / "state.db").string(), clock, options);
                                     if (!store) return store.status();
                                     return std::unique_ptr<Store>(std::move(store).value());
                                   }}),
    [](const ::testing::TestParamInfo<StoreBackend>& backend) { return backend.param.name; });

// Restarts: what the file database must keep across closing and reopening.
class SqliteStoreTest : public SqliteStoreFile {
 protected:
  SqliteStoreTest() : SqliteStoreFile(StoreOptions{kLeaseMs, kMaxAttempts}) {}
};

TEST_F(SqliteStoreTest, TrialsAndLeasesSurviveAReopen) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  std::string worker;
  Lease completed;
  Lease running;
  {
    std::unique_ptr<SqliteStore> store = open_store();
    expect_ok(store->sync_grid(Grid(config)));
    worker = value_of(store->register_worker(worker_on("host-a"))).id;
    completed = *value_of(store->claim_next_trial(worker)).lease;
    expect_ok(store->complete(completed.trial_id, completed.lease_token, {{"loss", 0.25}}));
    running = *value_of(store->claim_next_trial(worker)).lease;
    expect_ok(store->add_metrics(running.trial_id, running.lease_token,
                                 {MetricPoint{1, 5, {{"loss", 0.5}}}}));
  }
  clock_.advance_ms(kLeaseMs / 2);

  std::unique_ptr<SqliteStore> store = open_store(SqliteOptions{/*synchronous_full=*/true});
  expect_ok(store->sync_grid(Grid(config)));  // what a restarted server does first

  TrialRecord done = value_of(store->get_trial(completed.trial_id));
  EXPECT_EQ(done.state, TrialState::kDone);
  EXPECT_EQ(done.results, nlohmann::json({{"loss", 0.25}}));
  TrialRecord still_running = value_of(store->get_trial(running.trial_id));
  EXPECT_EQ(still_running.state, TrialState::kRunning);
  EXPECT_EQ(still_running.lease_expires_ms, running.lease_expires_ms);
  EXPECT_EQ(value_of(store->list_metrics(running.trial_id)).size(), 1u);
  EXPECT_EQ(worker_record(*store, worker).trials_done, 1);

  expect_ok(store->heartbeat(running.trial_id, running.lease_token).status());
  expect_ok(store->complete(running.trial_id, running.lease_token, {{"loss", 0.125}}));
  EXPECT_EQ(value_of(store->get_trial(running.trial_id)).results,
            nlohmann::json({{"loss", 0.125}}));
  ExperimentSummary summary = summary_of(*store, "exp");
  EXPECT_EQ(summary.done, 2);
  EXPECT_EQ(summary.pending, 1);
}

TEST_F(SqliteStoreTest, AVersion1DatabaseIsMigratedKeepingEverything) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  const std::string done_id = Grid(config).id_at(0);
  const std::string failed_id = Grid(config).id_at(1);
  std::string worker;
  {
    SqliteOptions version1;
    version1.migrate_up_to_version = 1;
    std::unique_ptr<SqliteStore> old = open_store(version1);
    expect_ok(old->sync_grid(Grid(config)));
    worker = value_of(old->register_worker(worker_on("a"))).id;
  }
  {
    // Claimed, completed, expired and failed as version 1 wrote them: one trial done, one
    // failed on its second attempt after an expired first, their history rows interleaved.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
    std::string sql =
        "UPDATE trials SET state = 'done', results = '{\"loss\":0.5}', attempts = 1, "
        "worker_id = '" +
        worker + "', started_ms = 1000, finished_ms = 5000 WHERE id = '" + done_id +
        "'; UPDATE trials SET state = 'failed', attempts = 2, worker_id = '" + worker +
        "', started_ms = 2000, finished_ms = 3000, error = 'ValueError: no', traceback = 'tb' "
        "WHERE id = '" +
        failed_id +
        "'; INSERT INTO trial_attempts (trial_id, attempt, worker_id, lease_token, started_ms, "
        "ended_ms, outcome, error) VALUES ('" +
        failed_id + "', 1, '" + worker + "', 't1', 500, 900, 'expired', NULL), ('" + done_id +
        "', 1, '" + worker + "', 't2', 1000, 5000, 'done', NULL), ('" + failed_id + "', 2, '" +
        worker + "', 't3', 2000, 3000, 'failed', 'ValueError: no');";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  std::unique_ptr<SqliteStore> store = open_store();
  EXPECT_FALSE(worker_record(*store, worker).info.slurm.has_value());
  TrialRecord done = value_of(store->get_trial(done_id));
  EXPECT_EQ(done.state, TrialState::kDone);
  EXPECT_EQ(done.results, nlohmann::json({{"loss", 0.5}}));
  auto outcomes = [&](const std::string& trial_id) {
    std::vector<std::string> found;
    for (const AttemptRecord& attempt : value_of(store->list_attempts(trial_id))) {
      found.push_back(std::to_string(attempt.attempt) + " " + attempt.outcome);
    }
    return found;
  };
  // The attempt history survives version 4's chaining, in order.
  EXPECT_EQ(outcomes(failed_id), (std::vector<std::string>{"1 expired", "2 failed"}));
  EXPECT_EQ(value_of(store->list_attempts(failed_id)).at(1).error, "ValueError: no");
  EXPECT_EQ(outcomes(done_id), (std::vector<std::string>{"1 done"}));
  EXPECT_TRUE(IsError(store->complete(done_id, "t2", {}), Code::kConflict, "already done"));
  ExperimentSummary summary = summary_of(*store, "exp");
  EXPECT_EQ(summary.done, 1);
  EXPECT_EQ(summary.failed, 1);
  EXPECT_EQ(summary.pending, 1);
  ASSERT_TRUE(summary.mean_done_ms.has_value());
  EXPECT_DOUBLE_EQ(*summary.mean_done_ms, 4'000.0);
  // The new state works on the migrated tables, and the counts stay exact.
  EXPECT_EQ(value_of(store->cancel_trials({"exp", std::nullopt})).size(), 1u);
  EXPECT_EQ(value_of(store->retry_trials({"exp", std::nullopt})).size(), 2u);
  expect_summaries_match_trials(*store);
  // And so do claim ids (version 3), and a claim extends a migrated trial's history.
  std::string new_worker = value_of(store->register_worker(worker_on("b"))).id;
  Lease claimed = *value_of(store->claim_next_trial(new_worker, "after-migration")).lease;
  EXPECT_EQ(claimed.trial_id, failed_id);
  EXPECT_TRUE(value_of(store->claim_next_trial(new_worker, "after-migration")).resumed);
  EXPECT_EQ(value_of(store->get_trial(claimed.trial_id)).attempts, 1);
  expect_ok(store->complete(claimed.trial_id, claimed.lease_token, {}));
  EXPECT_EQ(outcomes(failed_id), (std::vector<std::string>{"1 expired", "2 failed", "1 done"}));
}

TEST_F(SqliteStoreTest, AVersion4DatabaseRecordsItsConfigAtTheNextSync) {
  ExperimentConfig config = config_over("exp", {1, 2, 3});
  config.document["data"] = "a";
  std::string done_id;
  {
    SqliteOptions version4;
    version4.migrate_up_to_version = 4;
    std::unique_ptr<SqliteStore> old = open_store(version4);
    expect_ok(old->sync_grid(Grid(config)));
    std::string worker = value_of(old->register_worker(worker_on("a"))).id;
    Lease lease = *value_of(old->claim_next_trial(worker)).lease;
    expect_ok(old->complete(lease.trial_id, lease.lease_token, {}));
    done_id = lease.trial_id;
  }
  std::unique_ptr<SqliteStore> store = open_store();
  // Nothing to compare a changed config with: the next start records it.
  std::optional<RecordedConfig> recorded = value_of(store->recorded_config("exp"));
  ASSERT_TRUE(recorded.has_value());
  EXPECT_FALSE(recorded->common_config.has_value());
  EXPECT_EQ(recorded->config_generation, 0);
  EXPECT_EQ(recorded->trials_not_pending, 1);
  expect_ok(store->sync_grid(Grid(config)));
  EXPECT_EQ(value_of(store->recorded_config("exp"))->common_config, R"({"data":"a"})");
  EXPECT_EQ(value_of(store->get_trial(done_id)).state, TrialState::kDone);
  EXPECT_TRUE(value_of(store->get_trial(done_id)).in_config);
}

TEST_F(SqliteStoreTest, AVersion8DatabaseIsMigratedWithItsWorkersOutsideSlurm) {
  std::string old_worker;
  {
    std::unique_ptr<SqliteStore> old = open_store_at_version(8);
    expect_ok(old->sync_grid(grid_of(1)));
    old_worker = register_worker(*old);
    EXPECT_FALSE(worker_record(*old, old_worker).info.slurm.has_value());
  }
  std::unique_ptr<SqliteStore> store = open_store();
  EXPECT_FALSE(worker_record(*store, old_worker).info.slurm.has_value());
  WorkerInfo in_slurm = worker_on("node01");
  in_slurm.slurm = nlohmann::json{{"job_id", "1236"},
                                  {"array_job_id", "1234"},
                                  {"array_task_id", 2},
                                  {"node_list", "node01"},
                                  {"restart_count", 0}};
  std::string slurm_worker = value_of(store->register_worker(in_slurm)).id;
  std::string plain_worker = register_worker(*store);
  EXPECT_EQ(worker_record(*store, slurm_worker).info.slurm, in_slurm.slurm);
  EXPECT_FALSE(worker_record(*store, plain_worker).info.slurm.has_value());
  // The claims of a migrated worker go on.
  EXPECT_TRUE(value_of(store->claim_next_trial(old_worker)).lease.has_value());
  store.reset();
  // Outside Slurm the column is SQL NULL, not the JSON text "null".
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM workers WHERE slurm IS NULL", -1, &count,
                               nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(count, 0), 2);
  sqlite3_finalize(count);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, TheWalIsCheckpointedOffTheCommitPath) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; "
                         "CREATE TABLE t (x INTEGER);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  std::unique_ptr<WalCheckpointer> checkpointer =
      value_of(WalCheckpointer::start(path(), std::chrono::milliseconds(5)));
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(sqlite3_exec(db, "INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (checkpointer->pages_copied() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(checkpointer->pages_copied(), 0);
  checkpointer.reset();  // a last checkpoint, then the thread is gone
  // Every frame is in the database file now: a full checkpoint has nothing left to copy.
  int log_pages = -1;
  int copied_pages = -1;
  ASSERT_EQ(
      sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &copied_pages),
      SQLITE_OK);
  EXPECT_EQ(log_pages, copied_pages);
  sqlite3_close(db);
}

// A clock that, once armed, stops the next caller of now_ms() until opened: the store reads
// it just before running each call, so a call can be held inside its transaction.
class GatedClock final : public Clock {
 public:
  TimeMs now_ms() const override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (armed_) {
      armed_ = false;
      reached_ = true;
      changed_.notify_all();
      changed_.wait(lock, [this] { return open_; });
    }
    return clock_.now_ms();
  }
  void arm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = true;
  }
  void wait_until_reached() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return reached_; });
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  FakeClock clock_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  mutable bool armed_ = false;
  mutable bool reached_ = false;
  bool open_ = false;
};

TEST(SqliteStoreGroupCommit, CallsSharingATransactionSucceedOrFailEachOnItsOwn) {
  TempDir dir;
  std::string path = (dir.path() / "state.db").string();
  GatedClock clock;
  ExperimentConfig config = config_over("exp", {1, 2, 3, 4});
  Lease first;
  std::optional<Lease> held_claim, batched_claim;
  Status wrong_token, completion;
  {
    std::unique_ptr<SqliteStore> store =
        value_of(SqliteStore::open(path, clock, StoreOptions{kLeaseMs, kMaxAttempts}));
    expect_ok(store->sync_grid(Grid(config)));
    std::string worker = value_of(store->register_worker(worker_on("host"))).id;
    first = *value_of(store->claim_next_trial(worker)).lease;
    StoreStats before = store->stats();

    clock.arm();
    std::vector<std::thread> threads;
    // Held inside its own transaction; the three calls below queue behind it, in this order.
    threads.emplace_back([&] { held_claim = value_of(store->claim_next_trial(worker)).lease; });
    clock.wait_until_reached();
    auto queue_behind = [&](std::function<void()> call, std::int64_t waiting) {
      threads.emplace_back(std::move(call));
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (store->stats().waiting < waiting && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      ASSERT_EQ(store->stats().waiting, waiting);
    };
    queue_behind([&] { wrong_token = store->complete(first.trial_id, "0123456789abcdef", {}); }, 1);
    std::function<void()> complete_first = [&] {
      completion = store->complete(first.trial_id, first.lease_token, {{"loss", 0.5}});
    };
    queue_behind(complete_first, 2);
    queue_behind([&] { batched_claim = value_of(store->claim_next_trial(worker)).lease; }, 3);
    clock.open();
    for (std::thread& thread : threads) thread.join();

    StoreStats after = store->stats();
    EXPECT_EQ(after.calls - before.calls, 4);
    EXPECT_EQ(after.transactions - before.transactions, 2);  // the held claim, then the rest
    EXPECT_EQ(after.waiting, 0);
  }
  EXPECT_TRUE(IsError(wrong_token, Code::kConflict, first.trial_id));
  expect_ok(completion);
  ASSERT_TRUE(held_claim && batched_claim);
  EXPECT_NE(held_claim->trial_id, batched_claim->trial_id);

  // The calls that succeeded were committed together with the one that failed.
  FakeClock later;
  std::unique_ptr<SqliteStore> reopened =
      value_of(SqliteStore::open(path, later, StoreOptions{kLeaseMs, kMaxAttempts}));
  TrialRecord done = value_of(reopened->get_trial(first.trial_id));
  EXPECT_EQ(done.state, TrialState::kDone);
  EXPECT_EQ(done.results, nlohmann::json({{"loss", 0.5}}));
  EXPECT_EQ(value_of(reopened->get_trial(held_claim->trial_id)).state, TrialState::kRunning);
  EXPECT_EQ(value_of(reopened->get_trial(batched_claim->trial_id)).state, TrialState::kRunning);
  ExperimentSummary summary = summary_of(*reopened, "exp");
  EXPECT_EQ(summary.done, 1);
  EXPECT_EQ(summary.running, 2);
  EXPECT_EQ(summary.pending, 1);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerSchema) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path().c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  Result<std::unique_ptr<SqliteStore>> store =
      SqliteStore::open(path(), clock_, StoreOptions{kLeaseMs, kMaxAttempts});

  EXPECT_TRUE(IsError(store.status(), Code::kIoError, "newer"));
}

}  // namespace
}  // namespace gridexp
