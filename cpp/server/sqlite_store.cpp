// SqliteStore: opening the database, and each Store method run as one step of
// SqliteStore::Impl in a transaction of its own or a shared one (see sqlite_store_impl.h for
// where each step lives).
#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <mutex>

#include "server/sqlite_schema.h"
#include "server/sqlite_store_impl.h"

namespace gridexp {
namespace {

// See SqliteStore::open: SQLite's own checkpoint (inside COMMIT) only once the log is this
// long (16 MiB), the background WalCheckpointer keeping it short otherwise.
constexpr int kBackstopCheckpointPages = 4000;

}  // namespace

using sql::TransactionKind;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, const Clock& clock,
                                                       StoreOptions options,
                                                       SqliteOptions sqlite_options) {
  // SQLite's allocation statistics cost a global mutex per malloc; nothing here reads them.
  // A process-wide setting SQLite accepts only before its first use (later it is refused and
  // changes nothing).
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* db = nullptr;
  // The store's GroupCommit serializes every use of the connection.
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Status status = rc == SQLITE_OK ? sql::configure_connection(db, sqlite_options)
                                  : sql::sqlite_status(db, rc, "opening " + path);
  if (!status) {
    sqlite3_close(db);
    return Status(status.code(), path + ": " + status.message());
  }
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(db, clock, options));
  store->impl_->records_configs =
      sqlite_options.migrate_up_to_version == 0 ||
      sqlite_options.migrate_up_to_version >= sql::kConfigsRecordedSinceVersion;
  store->impl_->records_checkpoints =
      sqlite_options.migrate_up_to_version == 0 ||
      sqlite_options.migrate_up_to_version >= sql::kCheckpointsSinceVersion;
  store->impl_->records_slurm_placements =
      sqlite_options.migrate_up_to_version == 0 ||
      sqlite_options.migrate_up_to_version >= sql::kSlurmPlacementSinceVersion;
  if (path != ":memory:" && sqlite_options.checkpoint_period.count() > 0) {
    Result<std::unique_ptr<WalCheckpointer>> checkpointer =
        WalCheckpointer::start(path, sqlite_options.checkpoint_period);
    // Without it, SQLite's own checkpoints inside COMMIT carry on: slower, still correct.
    if (checkpointer) {
      // A backstop, not off: under a sustained stream of commits the background checkpoint
      // never catches up with the last frame, so the log would never restart and every
      // lookup in it grows slower. Past this many pages a COMMIT checkpoints as before — it
      // finds most frames already copied.
      Status off = sql::execute_script(
          db, "PRAGMA wal_autocheckpoint = " + std::to_string(kBackstopCheckpointPages) + ";");
      if (off) store->impl_->checkpointer = std::move(checkpointer).value();
    }
  }
  return store;
}

SqliteStore::SqliteStore(sqlite3* db, const Clock& clock, StoreOptions options)
    : impl_(std::make_unique<Impl>(db, clock, options)) {}

SqliteStore::~SqliteStore() = default;

Status SqliteStore::sync_grid(const Grid& grid, const std::function<bool()>& should_stop) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.sync_grid(grid, should_stop, now); });
}

Result<std::optional<RecordedConfig>> SqliteStore::recorded_config(const std::string& experiment) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead,
                       [&](TimeMs) { return impl.recorded_config(experiment); });
}

Result<WorkerRecord> SqliteStore::register_worker(const WorkerInfo& info) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.register_worker(info, now); });
}

Result<std::vector<WorkerRecord>> SqliteStore::list_workers() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) { return impl.list_workers(); });
}

Result<ClaimOutcome> SqliteStore::claim_next_trial(const std::string& worker_id,
                                                   const std::string& claim_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.claim(worker_id, claim_id, now); });
}

Result<HeartbeatReply> SqliteStore::heartbeat(const std::string& trial_id,
                                              const std::string& lease_token) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.heartbeat(trial_id, lease_token, now); });
}

Status SqliteStore::add_metrics(const std::string& trial_id, const std::string& lease_token,
                                const std::vector<MetricPoint>& points) {
  for (const MetricPoint& point : points) {
    if (!point.values.is_object()) {
      return Status::invalid_argument("metric values must be a JSON object");
    }
  }
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.add_metrics(trial_id, lease_token, points, now);
  });
}

Status SqliteStore::check_lease(const std::string& trial_id, const std::string& lease_token) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs now) -> Status {
    return impl.hold_lease(trial_id, lease_token, now).status();
  });
}

Status SqliteStore::attach_model(const std::string& trial_id, const std::string& lease_token,
                                 const ModelInfo& model) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.attach_model(trial_id, lease_token, model, now);
  });
}

Status SqliteStore::complete(const std::string& trial_id, const std::string& lease_token,
                             const nlohmann::json& results, const TrialMeasurements& measurements) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    return impl.complete(trial_id, lease_token, results, measurements, now).status();
  });
}

Result<ClaimOutcome> SqliteStore::complete_and_claim(const std::string& trial_id,
                                                     const std::string& lease_token,
                                                     const nlohmann::json& results,
                                                     const TrialMeasurements& measurements,
                                                     const std::string& claim_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Result<ClaimOutcome> {
    Result<std::string> worker_id =
        impl.complete(trial_id, lease_token, results, measurements, now);
    if (!worker_id) return worker_id.status();
    return impl.claim(*worker_id, claim_id, now);
  });
}

Status SqliteStore::fail(const std::string& trial_id, const std::string& lease_token,
                         const std::string& error, const std::string& traceback,
                         const TrialMeasurements& measurements) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.fail(trial_id, lease_token, error, traceback, measurements, now);
  });
}

Status SqliteStore::release(const std::string& trial_id, const std::string& lease_token) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    return impl.hand_back(trial_id, lease_token, "released", std::nullopt, now).status();
  });
}

Result<TrialState> SqliteStore::preempt(const std::string& trial_id, const std::string& lease_token,
                                        const std::string& reason) {
  Impl& impl = *impl_;
  std::optional<std::string> recorded_reason;
  if (!reason.empty()) recorded_reason = reason;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.hand_back(trial_id, lease_token, "preempted", recorded_reason, now);
  });
}

Result<std::optional<std::string>> SqliteStore::record_checkpoint(
    const std::string& trial_id, const std::string& lease_token, const CheckpointInfo& checkpoint) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.record_checkpoint(trial_id, lease_token, checkpoint, now);
  });
}

Result<std::vector<std::string>> SqliteStore::checkpoint_files() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) { return impl.checkpoint_files(); });
}

Result<TrialState> SqliteStore::requeue_lost(const std::string& trial_id,
                                             const std::string& lease_token,
                                             const std::string& reason) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) {
    return impl.requeue_lost(trial_id, lease_token, reason, now);
  });
}

Result<std::int64_t> SqliteStore::requeue_expired() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.requeue_expired(now); });
}

Result<std::vector<ExperimentSummary>> SqliteStore::list_experiments() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) { return impl.list_experiments(); });
}

Result<std::vector<TrialRecord>> SqliteStore::list_trials(const std::string& experiment) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead,
                       [&](TimeMs) { return impl.list_trials(experiment); });
}

Result<TrialRecord> SqliteStore::get_trial(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) { return impl.get_trial(trial_id); });
}

Result<std::vector<MetricPoint>> SqliteStore::list_metrics(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) { return impl.list_metrics(trial_id); });
}

Result<std::vector<AttemptRecord>> SqliteStore::list_attempts(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead,
                       [&](TimeMs) { return impl.list_attempts(trial_id); });
}

Result<std::vector<std::string>> SqliteStore::retry_trials(const TrialSelection& selection) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs) { return impl.retry_trials(selection); });
}

Result<std::vector<std::string>> SqliteStore::cancel_trials(const TrialSelection& selection) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.cancel_trials(selection, now); });
}

StoreStats SqliteStore::stats() const {
  GroupCommitStats served = impl_->group_commit.stats();
  return StoreStats{served.calls, impl_->transactions.load(),
                    static_cast<std::int64_t>(impl_->group_commit.waiting())};
}

}  // namespace gridexp
