// SqliteStore::sync_grid: the experiment of the current config made the active one, and its
// grid's points made its trials in config, each kept with its state and results if it
// already was one. Keeps writes proportional to what changed: re-syncing an unchanged grid
// only reads, and switching experiments flips in_config with two set-wide statements rather
// than a statement per trial. The only call that scans the trials table.
#include "server/sqlite_store_impl.h"

namespace gridexp {
namespace {

// How often sync_grid asks whether to stop: a few milliseconds of work apart.
constexpr std::uint64_t kPointsBetweenStopChecks = 4096;

Status interrupted() { return Status::unavailable("interrupted before the grid was recorded"); }

}  // namespace

Status SqliteStore::Impl::sync_grid(const Grid& grid, const std::function<bool()>& should_stop,
                                    TimeMs now) {
  const std::string& experiment = grid.experiment_name();
  Result<bool> had_trials = has_trials(experiment);
  if (!had_trials) return had_trials.status();
  Result<bool> was_active = activate_experiment(experiment, now);
  if (!was_active) return was_active.status();
  Result<bool> generation_changed = record_config(grid);
  if (!generation_changed) return generation_changed.status();
  Status status = bring_back_in_config(experiment, *generation_changed, *was_active);
  if (!status) return status;
  const bool known_points = *had_trials && !*generation_changed;
  Result<std::int64_t> inserted = add_trials_of(grid, /*look_up=*/known_points, should_stop);
  if (!inserted) return inserted.status();
  if (known_points) {
    status = retire_trials_not_in(grid, should_stop);
    if (!status) return status;
  }
  return statement(
             "INSERT INTO trial_counts (experiment, in_config, state, count) "
             "VALUES (?1, 1, 'pending', ?2) "
             "ON CONFLICT DO UPDATE SET count = count + excluded.count")
      .bind(1, experiment)
      .bind(2, *inserted)
      .execute();
}

// Takes out of config the trials of the experiment active before, and of a run of the grid
// before a new generation; brings `experiment`'s back in if it was not the active one
// (retire_trials_not_in later takes out those the grid no longer has).
Status SqliteStore::Impl::bring_back_in_config(const std::string& experiment,
                                               bool generation_changed, bool was_active) {
  if (generation_changed) {
    // A new run of the grid: no trial in config (of this experiment or the one active
    // before it) is one of its points.
    return execute("UPDATE trials SET in_config = 0 WHERE in_config = 1");
  }
  if (was_active) return Status::ok();
  Status status = execute("UPDATE trials SET in_config = 0 WHERE in_config = 1");
  if (!status) return status;
  return statement("UPDATE trials SET in_config = 1 WHERE experiment = ?1")
      .bind(1, experiment)
      .execute();
}

// Makes `experiment` the one active experiment; returns whether it already was.
Result<bool> SqliteStore::Impl::activate_experiment(const std::string& experiment, TimeMs now) {
  bool was_active = false;
  {
    Statement query = statement("SELECT active FROM experiments WHERE name = ?1");
    Result<bool> found = query.bind(1, experiment).next_row();
    if (!found) return found.status();
    was_active = *found && query.integer(0) != 0;
  }
  Status status = statement(
                      "INSERT INTO experiments (name, active, first_synced_ms, last_synced_ms) "
                      "VALUES (?1, 0, ?2, ?2) "
                      "ON CONFLICT (name) DO UPDATE SET last_synced_ms = excluded.last_synced_ms")
                      .bind(1, experiment)
                      .bind(2, now)
                      .execute();
  if (!status) return status;
  // Two steps, so the one-active unique index never sees two active rows.
  status = statement("UPDATE experiments SET active = 0 WHERE active = 1 AND name <> ?1")
               .bind(1, experiment)
               .execute();
  if (!status) return status;
  status =
      statement("UPDATE experiments SET active = 1 WHERE name = ?1").bind(1, experiment).execute();
  if (!status) return status;
  return was_active;
}

Result<bool> SqliteStore::Impl::has_trials(const std::string& experiment) {
  return statement("SELECT 1 FROM trials WHERE experiment = ?1 LIMIT 1")
      .bind(1, experiment)
      .next_row();
}

// Records the experiment's config and generation (its row exists); returns whether the
// generation was another.
Result<bool> SqliteStore::Impl::record_config(const Grid& grid) {
  if (!records_configs) return false;
  Statement query = statement("SELECT config_generation FROM experiments WHERE name = ?1");
  Result<bool> found = query.bind(1, grid.experiment_name()).next_row();
  if (!found) return found.status();
  bool generation_changed = *found && query.integer(0) != grid.config_generation();
  Status status = statement(
                      "UPDATE experiments SET common_config = ?2, config_generation = ?3 "
                      "WHERE name = ?1")
                      .bind(1, grid.experiment_name())
                      .bind(2, grid.common_config())
                      .bind(3, grid.config_generation())
                      .execute();
  if (!status) return status;
  return generation_changed;
}

// Inserts the points of `grid` that have no trial yet as pending and gives the others their
// index in `grid` and in_config = 1, keeping state and results. Returns how many it
// inserted. `look_up` = false skips looking each point up, for an experiment without
// trials. A point the grid lists twice is one trial, at one of its indexes.
Result<std::int64_t> SqliteStore::Impl::add_trials_of(const Grid& grid, bool look_up,
                                                      const std::function<bool()>& should_stop) {
  std::int64_t inserted = 0;
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    if (index % kPointsBetweenStopChecks == 0 && should_stop()) return interrupted();
    std::string id = grid.id_at(index);
    auto grid_index = static_cast<std::int64_t>(index);
    bool exists = false;
    bool placed = false;  // in config at this index already
    if (look_up) {
      Statement existing = statement("SELECT in_config, grid_index FROM trials WHERE id = ?1");
      Result<bool> found = existing.bind(1, id).next_row();
      if (!found) return found.status();
      exists = *found;
      placed = exists && existing.integer(0) == 1 && existing.integer(1) == grid_index;
    }
    Status status;
    if (!exists) {
      status = statement(
                   "INSERT INTO trials (id, experiment, grid_index, in_config, state, "
                   "hyperparameters) VALUES (?1, ?2, ?3, 1, 'pending', ?4) "
                   "ON CONFLICT (id) DO NOTHING")
                   .bind(1, id)
                   .bind(2, grid.experiment_name())
                   .bind(3, grid_index)
                   .bind(4, grid.hyperparameters_json_at(index))
                   .execute();
      inserted += sqlite3_changes(db);
    } else if (!placed) {
      status = statement("UPDATE trials SET in_config = 1, grid_index = ?2 WHERE id = ?1")
                   .bind(1, id)
                   .bind(2, grid_index)
                   .execute();
    }
    if (!status) return status;
  }
  return inserted;
}

// Sets in_config = 0 on every trial in config whose index in `grid` does not hold its
// point: the points the grid no longer has, once add_trials_of has placed the others.
// Trials of another config generation may be in config (switching back to an experiment
// brings all its trials back): past generation 0, ids are compared, not just texts.
Status SqliteStore::Impl::retire_trials_not_in(const Grid& grid,
                                               const std::function<bool()>& should_stop) {
  bool compare_ids = grid.config_generation() != 0;
  // In batches by rowid, so that no cursor is open on trials while it is written.
  constexpr std::int64_t kBatch = 1024;
  std::int64_t after_rowid = 0;
  for (;;) {
    std::vector<std::int64_t> retired;
    std::int64_t rows = 0;
    {
      if (should_stop()) return interrupted();
      Statement query = statement(
          "SELECT rowid, grid_index, hyperparameters, id FROM trials "
          "WHERE rowid > ?1 AND in_config = 1 ORDER BY rowid LIMIT ?2");
      query.bind(1, after_rowid).bind(2, kBatch);
      for (;; ++rows) {
        Result<bool> row = query.next_row();
        if (!row) return row.status();
        if (!*row) break;
        after_rowid = query.integer(0);
        // Trials in config belong to the grid's experiment, and an id hashes the
        // experiment with this canonical text: comparing texts compares ids.
        auto index = static_cast<std::uint64_t>(query.integer(1));
        if (index >= grid.size() || query.text(2) != grid.hyperparameters_json_at(index) ||
            (compare_ids && query.text(3) != grid.id_at(index))) {
          retired.push_back(after_rowid);
        }
      }
    }
    for (std::int64_t rowid : retired) {
      Status status =
          statement("UPDATE trials SET in_config = 0 WHERE rowid = ?1").bind(1, rowid).execute();
      if (!status) return status;
    }
    if (rows < kBatch) return Status::ok();
  }
}

}  // namespace gridexp
