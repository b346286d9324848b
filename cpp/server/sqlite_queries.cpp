// SqliteStore's read API: what the dashboard and the command line show (experiments with
// their counts, trials, metrics, attempt histories, workers) and the config each
// experiment was last synced with. Reads only.
#include "server/sqlite_rows.h"
#include "server/sqlite_store_impl.h"

namespace gridexp {

using sql::parse_stored_json;

Result<std::optional<RecordedConfig>> SqliteStore::Impl::recorded_config(
    const std::string& experiment) {
  Statement query = statement(
      "SELECT common_config, config_generation, "
      "(SELECT coalesce(sum(count), 0) FROM trial_counts "
      "WHERE experiment = ?1 AND state <> 'pending') "
      "FROM experiments WHERE name = ?1");
  Result<bool> found = query.bind(1, experiment).next_row();
  if (!found) return found.status();
  if (!*found) return std::optional<RecordedConfig>();
  RecordedConfig recorded;
  if (!query.is_null(0)) recorded.common_config = query.text(0);
  recorded.config_generation = query.integer(1);
  recorded.trials_not_pending = query.integer(2);
  return std::optional<RecordedConfig>(std::move(recorded));
}

Result<std::vector<WorkerRecord>> SqliteStore::Impl::list_workers() {
  static const std::string kSql = "SELECT " + std::string(sql::kWorkerColumns) +
                                  ", slurm FROM workers ORDER BY first_seen_ms, id";
  static const std::string kSqlBeforeSlurm = "SELECT " + std::string(sql::kWorkerColumns) +
                                             ", NULL FROM workers ORDER BY first_seen_ms, id";
  Statement query = statement(records_slurm_placements ? kSql : kSqlBeforeSlurm);
  return sql::read_all(query, sql::read_worker);
}

Result<std::vector<ExperimentSummary>> SqliteStore::Impl::list_experiments() {
  Statement query = statement(
      "SELECT e.name, e.active, c.in_config, c.state, c.count, e.done_ms_total, "
      "e.done_count FROM experiments e "
      "LEFT JOIN trial_counts c ON c.experiment = e.name "
      "ORDER BY e.first_synced_ms, e.name");
  std::vector<ExperimentSummary> experiments;
  Status read = query.each_row([&]() -> Status {
    std::string name = query.text(0);
    if (experiments.empty() || experiments.back().name != name) {
      experiments.push_back(ExperimentSummary{});
      experiments.back().name = std::move(name);
      experiments.back().active = query.integer(1) != 0;
      if (query.integer(6) > 0) {
        experiments.back().mean_done_ms =
            static_cast<double>(query.integer(5)) / static_cast<double>(query.integer(6));
      }
    }
    ExperimentSummary& summary = experiments.back();
    if (query.is_null(3) || (summary.active && query.integer(2) == 0)) return Status::ok();
    std::optional<TrialState> state = trial_state_from_string(query.text(3));
    if (!state) return Status::internal("unknown trial state " + query.text(3));
    sql::add_count(summary, *state, query.integer(4));
    return Status::ok();
  });
  if (!read) return read;
  // Running trials are few (one per worker): the partial index lists them cheaply.
  Statement running = statement(
      "SELECT experiment, in_config, started_ms FROM trials "
      "WHERE state = 'running' AND started_ms IS NOT NULL");
  read = running.each_row([&] {
    for (ExperimentSummary& summary : experiments) {
      if (summary.name == running.text(0) && (!summary.active || running.integer(1) == 1)) {
        summary.running_started_ms.push_back(running.integer(2));
      }
    }
  });
  if (!read) return read;
  return experiments;
}

Result<std::vector<TrialRecord>> SqliteStore::Impl::list_trials(const std::string& experiment) {
  {
    Statement known = statement("SELECT 1 FROM experiments WHERE name = ?1");
    Result<bool> found = known.bind(1, experiment).next_row();
    if (!found) return found.status();
    if (!*found) return Status::not_found("no experiment " + experiment);
  }
  static const std::string kSql = "SELECT " + std::string(sql::kTrialColumns) +
                                  " FROM trials WHERE experiment = ?1 ORDER BY grid_index, id";
  Statement query = statement(kSql);
  query.bind(1, experiment);
  return sql::read_all(query, sql::read_trial);
}

Result<TrialRecord> SqliteStore::Impl::get_trial(const std::string& trial_id) {
  static const std::string kSql =
      "SELECT " + std::string(sql::kTrialColumns) + " FROM trials WHERE id = ?1";
  Statement query = statement(kSql);
  Result<bool> found = query.bind(1, trial_id).next_row();
  if (!found) return found.status();
  if (!*found) return Status::not_found("no trial " + trial_id);
  return sql::read_trial(query);
}

Result<std::vector<MetricPoint>> SqliteStore::Impl::list_metrics(const std::string& trial_id) {
  if (Status known = require_trial(trial_id); !known) return known;
  Statement query =
      statement("SELECT step, time_ms, values_json FROM metrics WHERE trial_id = ?1 ORDER BY id");
  query.bind(1, trial_id);
  std::vector<MetricPoint> points;
  Status read = query.each_row([&]() -> Status {
    Result<nlohmann::json> values = parse_stored_json(query.text(2), "metric values");
    if (!values) return values.status();
    points.push_back(
        MetricPoint{query.optional_integer(0), query.integer(1), std::move(values).value()});
    return Status::ok();
  });
  if (!read) return read;
  return points;
}

Result<std::vector<AttemptRecord>> SqliteStore::Impl::list_attempts(const std::string& trial_id) {
  if (Status known = require_trial(trial_id); !known) return known;
  Statement query =
      statement(std::string(kAttemptChain) +
                "SELECT a.attempt, a.worker_id, a.started_ms, a.ended_ms, a.outcome, a.error, "
                "a.peak_gpu_memory_bytes, a.resumed, a.resumed_from_step "
                "FROM trial_attempts a JOIN chain c ON a.id = c.id ORDER BY a.id");
  query.bind(1, trial_id);
  std::vector<AttemptRecord> attempts;
  Status read = query.each_row([&] {
    attempts.push_back(AttemptRecord{static_cast<int>(query.integer(0)), query.text(1),
                                     query.integer(2), query.optional_integer(3), query.text(4),
                                     query.optional_text(5), query.optional_integer(6),
                                     query.integer(7) != 0, query.optional_integer(8)});
  });
  if (!read) return read;
  return attempts;
}

Status SqliteStore::Impl::require_trial(const std::string& trial_id) {
  Result<bool> found = statement("SELECT 1 FROM trials WHERE id = ?1").bind(1, trial_id).next_row();
  if (!found) return found.status();
  return *found ? Status::ok() : Status::not_found("no trial " + trial_id);
}

}  // namespace gridexp
