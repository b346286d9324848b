// Row mapping for SqliteStore (private to the sqlite_*.cpp files): JSON columns written and
// read back, and the rows of trials and workers made into the Store's records. Stateless;
// safe from any thread (a Statement itself is not).
#pragma once

#include <string_view>
#include <vector>

#include "server/sqlite_statement.h"
#include "server/store.h"

namespace gridexp::sql {

// Never throws: text that is not valid UTF-8 is stored with replacement characters.
std::string dump_json(const nlohmann::json& value);

// A JSON column read back; kInternal when it does not parse (`what` names it).
Result<nlohmann::json> parse_stored_json(std::string_view text, std::string_view what);

// Adds `count` trials in `state` to the matching field of a ClaimOutcome or ExperimentSummary.
template <typename Counts>
void add_count(Counts& counts, TrialState state, std::int64_t count) {
  switch (state) {
    case TrialState::kPending:
      counts.pending += count;
      break;
    case TrialState::kRunning:
      counts.running += count;
      break;
    case TrialState::kDone:
      counts.done += count;
      break;
    case TrialState::kFailed:
      counts.failed += count;
      break;
    case TrialState::kCancelled:
      counts.cancelled += count;
      break;
  }
}

// Columns in the order read_trial reads them.
inline constexpr std::string_view kTrialColumns =
    "id, experiment, grid_index, in_config, state, hyperparameters, results, attempts, "
    "worker_id, started_ms, finished_ms, lease_expires_ms, error, traceback, model_sha256, "
    "model_size, stop_requested, peak_gpu_memory_bytes, checkpoint_file, checkpoint_step, "
    "checkpoint_kind, checkpoint_size, checkpoint_sha256, checkpoint_attempt, "
    "checkpoint_saved_ms";

Result<TrialRecord> read_trial(const Statement& row);

// Columns in the order read_worker reads them, before the slurm column (which a database a
// test keeps at an older schema lacks: NULL is selected in its place).
inline constexpr std::string_view kWorkerColumns =
    "id, host, pid, devices, version, first_seen_ms, last_seen_ms, current_trial, "
    "trials_done, trials_failed";

Result<WorkerRecord> read_worker(const Statement& row);

// Every row of `query`, each made a T by `read_row`.
template <typename T>
Result<std::vector<T>> read_all(Statement& query, Result<T> (*read_row)(const Statement&)) {
  std::vector<T> rows;
  Status read = query.each_row([&]() -> Status {
    Result<T> row = read_row(query);
    if (!row) return row.status();
    rows.push_back(std::move(row).value());
    return Status::ok();
  });
  if (!read) return read;
  return rows;
}

}  // namespace gridexp::sql
