// SqliteStore's actions a user takes on trials: retry (failed and cancelled trials back to a
// fresh start) and cancel (a pending trial ends at once, a running one is asked to stop and
// ends when its worker next reports).
#include <set>

#include "server/sqlite_store_impl.h"

namespace gridexp {

Result<std::vector<std::string>> SqliteStore::Impl::retry_trials(const TrialSelection& selection) {
  Result<std::vector<Selected>> selected = select_trials(selection);
  if (!selected) return selected.status();
  std::vector<std::string> changed;
  for (const Selected& trial : *selected) {
    // A point no longer in the config would never be handed out again.
    if ((trial.state != "failed" && trial.state != "cancelled") || !trial.in_config) continue;
    Status status = statement(
                        "UPDATE trials SET state = 'pending', attempts = 0, results = NULL, "
                        "worker_id = NULL, started_ms = NULL, finished_ms = NULL, "
                        "error = NULL, traceback = NULL, model_sha256 = NULL, "
                        "model_size = NULL, stop_requested = 0, peak_gpu_memory_bytes = NULL "
                        "WHERE id = ?1")
                        .bind(1, trial.id)
                        .execute();
    if (!status) return status;
    changed.push_back(trial.id);
  }
  return changed;
}

Result<std::vector<std::string>> SqliteStore::Impl::cancel_trials(const TrialSelection& selection,
                                                                  TimeMs now) {
  Result<std::vector<Selected>> selected = select_trials(selection);
  if (!selected) return selected.status();
  std::vector<std::string> changed;
  for (const Selected& trial : *selected) {
    Status status;
    if (trial.state == "pending") {
      status = statement(
                   "UPDATE trials SET state = 'cancelled', error = 'cancelled by the user', "
                   "finished_ms = ?2 WHERE id = ?1")
                   .bind(1, trial.id)
                   .bind(2, now)
                   .execute();
    } else if (trial.state == "running" && !trial.stop_requested) {
      status = statement("UPDATE trials SET stop_requested = 1 WHERE id = ?1")
                   .bind(1, trial.id)
                   .execute();
    } else {
      continue;
    }
    if (!status) return status;
    changed.push_back(trial.id);
  }
  return changed;
}

// The trials of `selection` in grid order, with their state and stop flag.
Result<std::vector<SqliteStore::Impl::Selected>> SqliteStore::Impl::select_trials(
    const TrialSelection& selection) {
  std::vector<Selected> selected;
  auto collect = [&](Statement& query) {
    return query.each_row([&] {
      selected.push_back(
          {query.text(0), query.text(1), query.integer(2) != 0, query.integer(3) != 0});
    });
  };
  if (!selection.ids) {
    Statement query = statement(
        "SELECT id, state, stop_requested, in_config FROM trials "
        "WHERE experiment = ?1 AND in_config = 1 ORDER BY grid_index, id");
    query.bind(1, selection.experiment);
    if (Status status = collect(query); !status) return status;
    return selected;
  }
  std::set<std::string_view> seen;
  for (const std::string& id : *selection.ids) {
    if (!seen.insert(id).second) continue;  // an id given twice is one trial
    Statement query = statement(
        "SELECT id, state, stop_requested, in_config FROM trials "
        "WHERE id = ?1 AND experiment = ?2");
    query.bind(1, id).bind(2, selection.experiment);
    if (Status status = collect(query); !status) return status;
  }
  return selected;
}

}  // namespace gridexp
