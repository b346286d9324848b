// The JSON shapes of the read API (docs/api.md): a trial, an experiment with its estimate of
// the time left, a worker, a metric point, an attempt, and the trials as CSV.
#include <algorithm>
#include <map>
#include <set>

#include "server/http_util.h"
#include "server/route_helpers.h"
#include "server/routes.h"

namespace gridexp {
namespace {

using FlatValues = std::map<std::string, nlohmann::json>;

void flatten_scalars(const std::string& prefix, const nlohmann::json& value, FlatValues* out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      flatten_scalars(prefix.empty() ? key : prefix + "." + key, item, out);
    }
  } else if (!value.is_array() && !prefix.empty()) {
    (*out)[prefix] = value;
  }
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string csv_value(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return csv_cell(value.get<std::string>());
  return csv_cell(value.dump());
}

const std::vector<std::string>& fixed_csv_columns() {
  static const std::vector<std::string> kFixed = {"id",         "state",       "attempts", "worker",
                                                  "started_at", "finished_at", "error"};
  return kFixed;
}

// The variable columns of the CSV: every hyperparameter and every (flattened) result any trial
// has, with each trial's values.
struct CsvColumns {
  std::vector<FlatValues> hyperparameters;  // by trial
  std::vector<FlatValues> results;          // by trial
  std::set<std::string> hyperparameter_columns;
  std::set<std::string> result_columns;
};

CsvColumns collect_columns(const std::vector<TrialRecord>& trials) {
  CsvColumns columns;
  columns.hyperparameters.resize(trials.size());
  columns.results.resize(trials.size());
  for (std::size_t i = 0; i < trials.size(); ++i) {
    for (const auto& [key, value] : trials[i].hyperparameters.items()) {
      columns.hyperparameters[i][key] = value;
      columns.hyperparameter_columns.insert(key);
    }
    flatten_scalars("", trials[i].results, &columns.results[i]);
    for (const auto& entry : columns.results[i]) columns.result_columns.insert(entry.first);
  }
  return columns;
}

// The header line. A hyperparameter named like a fixed column, or a result named like either,
// is told apart by a prefix, so every header is unique.
std::string csv_header(const CsvColumns& columns) {
  std::set<std::string> taken(fixed_csv_columns().begin(), fixed_csv_columns().end());
  std::vector<std::string> hyperparameter_headers;
  for (const std::string& key : columns.hyperparameter_columns) {
    hyperparameter_headers.push_back(taken.count(key) ? "hyperparameters." + key : key);
  }
  taken.insert(hyperparameter_headers.begin(), hyperparameter_headers.end());
  std::string csv;
  for (const std::string& column : fixed_csv_columns()) csv += csv_cell(column) + ",";
  for (const std::string& header : hyperparameter_headers) csv += csv_cell(header) + ",";
  for (const std::string& key : columns.result_columns) {
    csv += csv_cell(taken.count(key) ? "results." + key : key) + ",";
  }
  csv.back() = '\n';
  return csv;
}

std::string csv_cells(const std::set<std::string>& columns, const FlatValues& values) {
  std::string cells;
  for (const std::string& column : columns) {
    auto value = values.find(column);
    cells += "," + (value == values.end() ? "" : csv_value(value->second));
  }
  return cells;
}

std::string csv_row(const TrialRecord& trial, const CsvColumns& columns, std::size_t index) {
  std::string csv =
      trial.id + "," + to_string(trial.state) + "," + std::to_string(trial.attempts) + ",";
  csv += csv_cell(trial.worker_id.value_or("")) + ",";
  csv += (trial.started_ms ? iso8601_utc(*trial.started_ms) : "") + ",";
  csv += (trial.finished_ms ? iso8601_utc(*trial.finished_ms) : "") + ",";
  csv += csv_cell(trial.error.value_or(""));
  csv += csv_cells(columns.hyperparameter_columns, columns.hyperparameters[index]);
  csv += csv_cells(columns.result_columns, columns.results[index]);
  return csv + "\n";
}

}  // namespace

nlohmann::json trial_to_json(const TrialRecord& trial) {
  nlohmann::json model = nullptr;
  if (trial.model) model = {{"sha256", trial.model->sha256}, {"size", trial.model->size_bytes}};
  nlohmann::json checkpoint = nullptr;
  if (trial.checkpoint) {
    checkpoint = {{"step", optional_value(trial.checkpoint->step)},
                  {"size", trial.checkpoint->size_bytes},
                  {"kind", trial.checkpoint->kind},
                  {"attempt", trial.checkpoint->attempt},
                  {"saved_at", iso8601_utc(trial.checkpoint->saved_ms)}};
  }
  return {
      {"id", trial.id},
      {"experiment", trial.experiment},
      {"grid_index", trial.grid_index},
      {"in_config", trial.in_config},
      {"state", to_string(trial.state)},
      {"hyperparameters", trial.hyperparameters},
      {"results", trial.results},
      {"attempts", trial.attempts},
      {"worker", optional_value(trial.worker_id)},
      {"started_at", optional_time(trial.started_ms)},
      {"finished_at", optional_time(trial.finished_ms)},
      {"lease_expires_at",
       trial.state == TrialState::kRunning ? optional_time(trial.lease_expires_ms) : nullptr},
      {"error", optional_value(trial.error)},
      {"traceback", optional_value(trial.traceback)},
      {"model", model},
      {"stop_requested", trial.stop_requested},
      {"peak_gpu_memory_bytes", optional_value(trial.peak_gpu_memory_bytes)},
      {"checkpoint", checkpoint},
  };
}

std::optional<double> estimate_seconds_left(const ExperimentSummary& experiment, TimeMs now_ms) {
  if (experiment.pending == 0 && experiment.running == 0) return 0.0;
  if (!experiment.mean_done_ms) return std::nullopt;
  double mean_ms = *experiment.mean_done_ms;
  double left_ms = static_cast<double>(experiment.pending) * mean_ms;
  for (TimeMs started_ms : experiment.running_started_ms) {
    left_ms += std::max(0.0, mean_ms - static_cast<double>(now_ms - started_ms));
  }
  double parallel = static_cast<double>(std::max<std::int64_t>(1, experiment.running));
  return left_ms / parallel / 1000.0;
}

nlohmann::json experiment_to_json(const ExperimentSummary& experiment, TimeMs now_ms) {
  std::optional<double> mean_seconds;
  if (experiment.mean_done_ms) mean_seconds = *experiment.mean_done_ms / 1000.0;
  return {{"name", experiment.name},
          {"active", experiment.active},
          {"total", experiment.total()},
          {"counts",
           {{"pending", experiment.pending},
            {"running", experiment.running},
            {"done", experiment.done},
            {"failed", experiment.failed},
            {"cancelled", experiment.cancelled}}},
          {"mean_duration_seconds", optional_value(mean_seconds)},
          {"eta_seconds", optional_value(estimate_seconds_left(experiment, now_ms))}};
}

nlohmann::json worker_to_json(const WorkerRecord& worker, TimeMs now_ms, TimeMs online_window) {
  return {{"id", worker.id},
          {"host", worker.info.host},
          {"pid", worker.info.pid},
          {"devices", worker.info.devices},
          {"version", worker.info.version},
          {"slurm", worker.info.slurm.value_or(nullptr)},
          {"first_seen", iso8601_utc(worker.first_seen_ms)},
          {"last_seen", iso8601_utc(worker.last_seen_ms)},
          {"current_trial", optional_value(worker.current_trial)},
          {"trials_done", worker.trials_done},
          {"trials_failed", worker.trials_failed},
          {"online", now_ms - worker.last_seen_ms <= online_window}};
}

nlohmann::json metric_point_to_json(const MetricPoint& point) {
  return {{"step", optional_value(point.step)},
          {"time", iso8601_utc(point.time_ms)},
          {"values", point.values}};
}

nlohmann::json attempt_to_json(const AttemptRecord& attempt) {
  return {{"attempt", attempt.attempt},
          {"worker", attempt.worker_id},
          {"started_at", iso8601_utc(attempt.started_ms)},
          {"ended_at", optional_time(attempt.ended_ms)},
          {"outcome", attempt.outcome},
          {"error", optional_value(attempt.error)},
          {"peak_gpu_memory_bytes", optional_value(attempt.peak_gpu_memory_bytes)},
          {"resumed", attempt.resumed},
          {"resumed_from_step", optional_value(attempt.resumed_from_step)}};
}

std::string trials_to_csv(const std::vector<TrialRecord>& trials) {
  CsvColumns columns = collect_columns(trials);
  std::string csv = csv_header(columns);
  for (std::size_t i = 0; i < trials.size(); ++i) csv += csv_row(trials[i], columns, i);
  return csv;
}

}  // namespace gridexp
