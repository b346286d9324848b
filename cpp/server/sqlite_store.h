// SqliteStore: the Store on one SQLite database in WAL mode (<dir>/.gridexp/state.db).
//
// One connection, used by one batch of calls at a time (GroupCommit): the calls that arrive
// while a transaction runs share the next one, each in a savepoint of its own, so every
// method is atomic, one COMMIT serves many calls, and an acknowledged change survives kill -9
// of the process (WAL, synchronous=NORMAL by default; `synchronous_full` also survives power
// loss at the cost of an fsync per transaction).
// A file database is checkpointed by a WalCheckpointer thread, off the commit path.
// Safe to call from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include "server/store.h"

struct sqlite3;

namespace gridexp {

struct SqliteOptions {
  bool synchronous_full = false;
  // Migrate the schema only this far (0: to the newest); tests use it to build old databases.
  int migrate_up_to_version = 0;
  // How often a background thread checkpoints the WAL (see wal_checkpointer.h); 0 leaves it
  // to SQLite, inside COMMIT.
  std::chrono::milliseconds checkpoint_period{100};
};

class SqliteStore final : public Store {
 public:
  // Opens or creates the database at `path` (":memory:" for tests) and migrates its schema.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, const Clock& clock,
                                                   StoreOptions options,
                                                   SqliteOptions sqlite_options = {});
  ~SqliteStore() override;

  using Store::sync_grid;
  Status sync_grid(const Grid& grid, const std::function<bool()>& should_stop) override;
  Result<std::optional<RecordedConfig>> recorded_config(const std::string& experiment) override;
  Result<WorkerRecord> register_worker(const WorkerInfo& info) override;
  Result<std::vector<WorkerRecord>> list_workers() override;
  using Store::claim_next_trial;
  Result<ClaimOutcome> claim_next_trial(const std::string& worker_id,
                                        const std::string& claim_id) override;
  Result<HeartbeatReply> heartbeat(const std::string& trial_id,
                                   const std::string& lease_token) override;
  Status add_metrics(const std::string& trial_id, const std::string& lease_token,
                     const std::vector<MetricPoint>& points) override;
  Status check_lease(const std::string& trial_id, const std::string& lease_token) override;
  Status attach_model(const std::string& trial_id, const std::string& lease_token,
                      const ModelInfo& model) override;
  using Store::complete;
  Status complete(const std::string& trial_id, const std::string& lease_token,
                  const nlohmann::json& results, const TrialMeasurements& measurements) override;
  using Store::complete_and_claim;
  Result<ClaimOutcome> complete_and_claim(const std::string& trial_id,
                                          const std::string& lease_token,
                                          const nlohmann::json& results,
                                          const TrialMeasurements& measurements,
                                          const std::string& claim_id) override;
  using Store::fail;
  Status fail(const std::string& trial_id, const std::string& lease_token, const std::string& error,
              const std::string& traceback, const TrialMeasurements& measurements) override;
  Status release(const std::string& trial_id, const std::string& lease_token) override;
  Result<TrialState> requeue_lost(const std::string& trial_id, const std::string& lease_token,
                                  const std::string& reason) override;
  Result<TrialState> preempt(const std::string& trial_id, const std::string& lease_token,
                             const std::string& reason) override;
  Result<std::optional<std::string>> record_checkpoint(const std::string& trial_id,
                                                       const std::string& lease_token,
                                                       const CheckpointInfo& checkpoint) override;
  Result<std::vector<std::string>> checkpoint_files() override;
  Result<std::int64_t> requeue_expired() override;
  Result<std::vector<ExperimentSummary>> list_experiments() override;
  Result<std::vector<TrialRecord>> list_trials(const std::string& experiment) override;
  Result<TrialRecord> get_trial(const std::string& trial_id) override;
  Result<std::vector<MetricPoint>> list_metrics(const std::string& trial_id) override;
  Result<std::vector<AttemptRecord>> list_attempts(const std::string& trial_id) override;
  Result<std::vector<std::string>> retry_trials(const TrialSelection& selection) override;
  Result<std::vector<std::string>> cancel_trials(const TrialSelection& selection) override;
  StoreStats stats() const override;

 private:
  SqliteStore(sqlite3* db, const Clock& clock, StoreOptions options);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gridexp
