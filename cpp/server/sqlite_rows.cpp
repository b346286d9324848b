// See sqlite_rows.h.
#include "server/sqlite_rows.h"

#include <optional>
#include <string>
#include <utility>

namespace gridexp::sql {

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<nlohmann::json> parse_stored_json(std::string_view text, std::string_view what) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return Status::internal("stored " + std::string(what) + " is not valid JSON");
  }
  return value;
}

Result<TrialRecord> read_trial(const Statement& row) {
  TrialRecord trial;
  trial.id = row.text(0);
  trial.experiment = row.text(1);
  trial.grid_index = static_cast<std::uint64_t>(row.integer(2));
  trial.in_config = row.integer(3) != 0;
  std::optional<TrialState> state = trial_state_from_string(row.text(4));
  if (!state) return Status::internal("trial " + trial.id + " has unknown state " + row.text(4));
  trial.state = *state;
  Result<nlohmann::json> hyperparameters = parse_stored_json(row.text(5), "hyperparameters");
  if (!hyperparameters) return hyperparameters.status();
  trial.hyperparameters = std::move(hyperparameters).value();
  if (!row.is_null(6)) {
    Result<nlohmann::json> results = parse_stored_json(row.text(6), "results");
    if (!results) return results.status();
    trial.results = std::move(results).value();
  }
  trial.attempts = static_cast<int>(row.integer(7));
  trial.worker_id = row.optional_text(8);
  trial.started_ms = row.optional_integer(9);
  trial.finished_ms = row.optional_integer(10);
  trial.lease_expires_ms = row.optional_integer(11);
  trial.error = row.optional_text(12);
  trial.traceback = row.optional_text(13);
  if (!row.is_null(14)) trial.model = ModelInfo{row.text(14), row.integer(15)};
  trial.stop_requested = row.integer(16) != 0;
  trial.peak_gpu_memory_bytes = row.optional_integer(17);
  if (!row.is_null(18)) {
    trial.checkpoint = CheckpointInfo{
        row.optional_integer(19),          row.text(20),    row.integer(21), row.text(22),
        static_cast<int>(row.integer(23)), row.integer(24), row.text(18)};
  }
  return trial;
}

Result<WorkerRecord> read_worker(const Statement& row) {
  WorkerRecord worker;
  worker.id = row.text(0);
  worker.info.host = row.text(1);
  worker.info.pid = row.integer(2);
  Result<nlohmann::json> devices = parse_stored_json(row.text(3), "worker devices");
  if (!devices) return devices.status();
  worker.info.devices = std::move(devices).value();
  worker.info.version = row.text(4);
  worker.first_seen_ms = row.integer(5);
  worker.last_seen_ms = row.integer(6);
  worker.current_trial = row.optional_text(7);
  worker.trials_done = row.integer(8);
  worker.trials_failed = row.integer(9);
  if (!row.is_null(10)) {
    Result<nlohmann::json> slurm = parse_stored_json(row.text(10), "worker slurm placement");
    if (!slurm) return slurm.status();
    worker.info.slurm = std::move(slurm).value();
  }
  return worker;
}

}  // namespace gridexp::sql
