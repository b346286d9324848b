// SqliteStore::Impl, shared by the files that implement SqliteStore (private to them): the
// connection, its statement cache and the group commit that runs every store call in a
// transaction, and one method per step of the Store's calls, defined by job:
//   sqlite_transactions.cpp  transactions and group commit (transact, run_batch)
//   sqlite_leases.cpp        workers, claims, heartbeats and the end of a lease
//   sqlite_grid_sync.cpp     sync_grid: the trials of the active config
//   sqlite_queries.cpp       the read API
//   sqlite_trial_actions.cpp the user's retry and cancel
//   sqlite_checkpoints.cpp   trials' checkpoints
// sqlite_store.cpp opens the store and runs each public method as transact(step).
//
// Every method but transact() and the constructor runs inside a transaction, on the one
// thread running GroupCommit's batch: db and statements are never used by two at once.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "server/group_commit.h"
#include "server/sqlite_statement.h"
#include "server/sqlite_store.h"
#include "server/wal_checkpointer.h"

namespace gridexp {
namespace sql {
enum class TransactionKind { kRead, kWrite };
}  // namespace sql

// The ids of trial ?1's attempts, as the CTE `chain(id)`: from trials.last_attempt_id back
// along previous_attempt_id (schema v4).
inline constexpr const char* kAttemptChain =
    "WITH RECURSIVE chain(id) AS (SELECT last_attempt_id FROM trials WHERE id = ?1 "
    "AND last_attempt_id IS NOT NULL UNION ALL SELECT a.previous_attempt_id FROM "
    "trial_attempts a JOIN chain c ON a.id = c.id WHERE a.previous_attempt_id IS NOT NULL) ";

struct SqliteStore::Impl {
  using Statement = sql::Statement;

  using TransactionKind = sql::TransactionKind;

  // Where a trial's lease stands for a caller that presented a valid token.
  struct HeldLease {
    std::string worker_id;
    std::int64_t attempt = 0;
    bool stop_requested = false;
  };

  // The trials of a TrialSelection in grid order, with their state and stop flag.
  struct Selected {
    std::string id;
    std::string state;
    bool stop_requested;
    bool in_config;
  };

  Impl(sqlite3* database, const Clock& store_clock, StoreOptions store_options);
  ~Impl();

  // `sql` must be one statement; it is prepared once and kept for the store's lifetime.
  Statement statement(std::string_view sql) { return statements.statement(sql); }
  Status execute(std::string_view sql) { return statement(sql).execute(); }

  // --- Transactions (sqlite_transactions.cpp) ---

  // One store method's body waiting for a transaction.
  class QueuedCall {
   public:
    template <typename Run>
    QueuedCall(TransactionKind call_kind, Run& run)
        : kind(call_kind),
          body_(&run),
          invoke_([](void* body, TimeMs now) { return (*static_cast<Run*>(body))(now); }) {}

    // Runs the body; an exception is kept for its caller and counts as a failure.
    Status run(TimeMs now);

    const TransactionKind kind;
    // Set when the body succeeded but its transaction did not commit.
    std::optional<Status> batch_failure;
    std::exception_ptr raised;

   private:
    void* body_;
    Status (*invoke_)(void* body, TimeMs now);
  };

  // Runs `body(now)` atomically: committed if it returns OK, rolled back otherwise, and
  // returns once that is durable. Calls that arrive while a transaction runs share the next
  // one (GroupCommit), each in a savepoint of its own; `now` is read just before each body
  // runs, so it never goes backwards from one call to the next. An exception from `body` is
  // rethrown here, after its changes were rolled back.
  template <typename Body>
  auto transact(TransactionKind kind, Body&& body) -> decltype(body(TimeMs{})) {
    using Outcome = decltype(body(TimeMs{}));
    std::optional<Outcome> outcome;
    auto run = [&](TimeMs now) -> Status {
      outcome.emplace(body(now));
      if constexpr (std::is_same_v<Outcome, Status>) {
        return *outcome;
      } else {
        return outcome->status();
      }
    };
    QueuedCall call(kind, run);
    group_commit.submit(call);
    if (call.raised) std::rethrow_exception(call.raised);
    if (call.batch_failure) return *call.batch_failure;
    return std::move(outcome).value();
  }

  // GroupCommit's batch: as few transactions as the calls allow, normally one.
  void run_batch(const std::vector<QueuedCall*>& calls);
  std::size_t run_transaction(const std::vector<QueuedCall*>& calls, std::size_t first);
  Status run_call(QueuedCall& call, bool alone, std::vector<QueuedCall*>& kept);
  Status end_call(const Status& status, bool alone);
  void commit(const std::vector<QueuedCall*>& kept);
  static void fail_all(const std::vector<QueuedCall*>& calls, const Status& status);
  Status rolled_back_to_savepoint();
  void abandon_transaction();

  // --- Workers and leases (sqlite_leases.cpp) ---

  Result<WorkerRecord> register_worker(const WorkerInfo& info, TimeMs now);
  Result<ClaimOutcome> claim(const std::string& worker_id, const std::string& claim_id, TimeMs now);
  Result<HeartbeatReply> heartbeat(const std::string& trial_id, const std::string& lease_token,
                                   TimeMs now);
  Status add_metrics(const std::string& trial_id, const std::string& lease_token,
                     const std::vector<MetricPoint>& points, TimeMs now);
  Status attach_model(const std::string& trial_id, const std::string& lease_token,
                      const ModelInfo& model, TimeMs now);
  // Returns the worker that held the lease.
  Result<std::string> complete(const std::string& trial_id, const std::string& lease_token,
                               const nlohmann::json& results, const TrialMeasurements& measurements,
                               TimeMs now);
  Status fail(const std::string& trial_id, const std::string& lease_token, const std::string& error,
              const std::string& traceback, const TrialMeasurements& measurements, TimeMs now);
  // A reported peak on the trial and on its newest attempt; nothing without one.
  Status record_measurements(const std::string& trial_id, const TrialMeasurements& measurements);
  // The worker gives the lease back uncounted (release, preempt): the trial pending again
  // with its attempt given back, the attempt closed with `outcome` and `reason`; cancelled
  // instead if that was asked for.
  Result<TrialState> hand_back(const std::string& trial_id, const std::string& lease_token,
                               std::string_view outcome, const std::optional<std::string>& reason,
                               TimeMs now);
  Result<TrialState> requeue_lost(const std::string& trial_id, const std::string& lease_token,
                                  const std::string& reason, TimeMs now);
  // A trial whose attempt ended without an outcome of its own (lease expired, executor lost):
  // pending again, or failed with `give_up_error` once it has used max_attempts.
  Result<TrialState> requeue_or_give_up(const std::string& trial_id, std::int64_t attempts,
                                        const std::string& give_up_error, TimeMs now);
  Result<std::int64_t> requeue_expired(TimeMs now);

  // A running trial whose lease has run out.
  struct ExpiredLease {
    std::string trial_id;
    std::int64_t attempts;
    std::string worker_id;
    std::string host;
    bool stop_requested;
  };
  Result<std::vector<ExpiredLease>> expired_leases(TimeMs now);
  Status requeue(const ExpiredLease& expired, TimeMs now);

  // Refuses with kNotFound or kConflict unless `lease_token` is the trial's live lease.
  Result<HeldLease> hold_lease(const std::string& trial_id, const std::string& lease_token,
                               TimeMs now);
  Status lease_conflict(const std::string& trial_id, const std::string& state,
                        const std::string& lease_token);
  Status set_lease_expiry(const std::string& trial_id, TimeMs expires_ms);
  Result<std::optional<Lease>> lease_of_claim(const std::string& worker_id,
                                              const std::string& claim_id, TimeMs now);
  Result<std::optional<Lease>> next_pending_lease(TimeMs now);
  Status start_attempt(const Lease& lease, const std::string& worker_id,
                       const std::string& claim_id, TimeMs now);
  Status count_active_trials(ClaimOutcome& outcome);
  Status end_attempt(const std::string& trial_id, std::string_view outcome,
                     const std::optional<std::string>& error, TimeMs now);
  Status end_cancelled(const std::string& trial_id, const std::string& reason, TimeMs now);
  Status finish_lease(const std::string& trial_id, const HeldLease& held, std::string_view outcome,
                      const std::optional<std::string>& error, TimeMs now);
  Status add_done_duration(const std::string& trial_id, TimeMs now);
  Status touch_worker(const std::string& worker_id, TimeMs now);
  Status worker_lease_ended(const std::string& worker_id, const std::string& trial_id, TimeMs now,
                            int done, int failed);

  // --- The grid (sqlite_grid_sync.cpp) ---

  Status sync_grid(const Grid& grid, const std::function<bool()>& should_stop, TimeMs now);
  Result<bool> activate_experiment(const std::string& experiment, TimeMs now);
  Result<bool> has_trials(const std::string& experiment);
  Result<bool> record_config(const Grid& grid);
  Status bring_back_in_config(const std::string& experiment, bool generation_changed,
                              bool was_active);
  Result<std::int64_t> add_trials_of(const Grid& grid, bool look_up,
                                     const std::function<bool()>& should_stop);
  Status retire_trials_not_in(const Grid& grid, const std::function<bool()>& should_stop);

  // --- The read API (sqlite_queries.cpp) ---

  Result<std::optional<RecordedConfig>> recorded_config(const std::string& experiment);
  Result<std::vector<WorkerRecord>> list_workers();
  Result<std::vector<ExperimentSummary>> list_experiments();
  Result<std::vector<TrialRecord>> list_trials(const std::string& experiment);
  Result<TrialRecord> get_trial(const std::string& trial_id);
  Result<std::vector<MetricPoint>> list_metrics(const std::string& trial_id);
  Result<std::vector<AttemptRecord>> list_attempts(const std::string& trial_id);
  // kNotFound unless the trial exists.
  Status require_trial(const std::string& trial_id);

  // --- Checkpoints (sqlite_checkpoints.cpp) ---

  Result<std::optional<std::string>> record_checkpoint(const std::string& trial_id,
                                                       const std::string& lease_token,
                                                       const CheckpointInfo& checkpoint,
                                                       TimeMs now);
  // The trial's checkpoint, if it has one (none before schema version 8).
  Result<std::optional<CheckpointInfo>> checkpoint_of(const std::string& trial_id);
  // A trial that ended done drops its checkpoint (a no-op before schema version 8).
  Status drop_checkpoint(const std::string& trial_id);
  Result<std::vector<std::string>> checkpoint_files();

  // --- The user's actions on trials (sqlite_trial_actions.cpp) ---

  Result<std::vector<std::string>> retry_trials(const TrialSelection& selection);
  Result<std::vector<std::string>> cancel_trials(const TrialSelection& selection, TimeMs now);
  Result<std::vector<Selected>> select_trials(const TrialSelection& selection);

  sqlite3* db;
  const Clock& clock;
  const StoreOptions options;
  // Runs every transaction, one at a time: db and statements are used only by its batches.
  GroupCommit<QueuedCall> group_commit{
      [this](const std::vector<QueuedCall*>& calls) { run_batch(calls); }};
  std::atomic<std::int64_t> transactions{0};      // begun, for stats()
  std::unique_ptr<WalCheckpointer> checkpointer;  // null for ":memory:"
  // False only for a database a test keeps at an older schema (migrate_up_to_version).
  bool records_configs = true;
  bool records_checkpoints = true;
  bool records_slurm_placements = true;
  sql::StatementCache statements{db};
};

}  // namespace gridexp
