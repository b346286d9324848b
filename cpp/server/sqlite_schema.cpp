// See sqlite_schema.h. The scripts of versions already released are history: a database
// of any of them must still migrate, so they are never edited, only added to.
#include "server/sqlite_schema.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <string>

#include "server/sqlite_statement.h"

namespace gridexp::sql {
namespace {

constexpr int kBusyTimeoutMs = 5'000;
// Enough that syncing a million-point grid does not thrash the primary-key index; more
// barely helps.
constexpr int kCacheSizeKib = 32 * 1024;
// The WAL file is truncated back to this after a checkpoint that emptied it.
constexpr int kJournalSizeLimitBytes = 64 * 1024 * 1024;

// kMigrations[v] moves a database from PRAGMA user_version v to v + 1. CHECKs are spelled
// with OR because `x IN (...)` builds an ephemeral table for every row written, which made
// syncing a large grid half again as slow.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE experiments (
  name TEXT PRIMARY KEY,
  active INTEGER NOT NULL CHECK (active = 0 OR active = 1),
  first_synced_ms INTEGER NOT NULL,
  last_synced_ms INTEGER NOT NULL
);
-- At most one experiment is active: the one of the current config.
CREATE UNIQUE INDEX experiments_active ON experiments (active) WHERE active = 1;

CREATE TABLE workers (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  devices TEXT NOT NULL,
  version TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  current_trial TEXT,
  trials_done INTEGER NOT NULL DEFAULT 0,
  trials_failed INTEGER NOT NULL DEFAULT 0
);

-- in_config = 1 only for points of the active experiment's current grid; grid_index is the
-- point's index in that grid, or in the last grid that held it.
-- lease_token and lease_expires_ms are set exactly while state = 'running'.
CREATE TABLE trials (
  id TEXT PRIMARY KEY,
  experiment TEXT NOT NULL REFERENCES experiments (name),
  grid_index INTEGER NOT NULL,
  in_config INTEGER NOT NULL CHECK (in_config = 0 OR in_config = 1),
  state TEXT NOT NULL
    CHECK (state = 'pending' OR state = 'running' OR state = 'done' OR state = 'failed'),
  hyperparameters TEXT NOT NULL,
  results TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_token TEXT,
  lease_expires_ms INTEGER,
  worker_id TEXT REFERENCES workers (id),
  started_ms INTEGER,
  finished_ms INTEGER,
  error TEXT,
  traceback TEXT,
  model_sha256 TEXT,
  model_size INTEGER,
  stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX trials_claimable ON trials (grid_index) WHERE in_config = 1 AND state = 'pending';
CREATE INDEX trials_leased ON trials (lease_expires_ms) WHERE state = 'running';
CREATE INDEX trials_by_experiment ON trials (experiment);

-- How many trials are in each (experiment, in_config, state), so that claims and summaries
-- never count by scanning. The trigger keeps it exact across updates; sync_grid, the only
-- writer that inserts trials, adds what it inserts (an insert trigger would cost a statement
-- journal per row), and trials are never deleted.
CREATE TABLE trial_counts (
  experiment TEXT NOT NULL,
  in_config INTEGER NOT NULL,
  state TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (experiment, in_config, state)
) WITHOUT ROWID;
CREATE TRIGGER trials_counted_on_update AFTER UPDATE OF in_config, state ON trials
WHEN old.in_config IS NOT new.in_config OR old.state IS NOT new.state
BEGIN
  UPDATE trial_counts SET count = count - 1
  WHERE experiment = old.experiment AND in_config = old.in_config AND state = old.state;
  INSERT INTO trial_counts (experiment, in_config, state, count)
  VALUES (new.experiment, new.in_config, new.state, 1)
  ON CONFLICT DO UPDATE SET count = count + 1;
END;

-- One row per claim, for the attempt history; outcome is 'running' while the lease is held.
-- A released claim and the claim after it share an attempt number, since a release gives
-- the attempt back.
CREATE TABLE trial_attempts (
  id INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL REFERENCES trials (id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL REFERENCES workers (id),
  lease_token TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  outcome TEXT NOT NULL CHECK (outcome = 'running' OR outcome = 'done' OR outcome = 'failed'
    OR outcome = 'released' OR outcome = 'expired'),
  error TEXT
);
CREATE INDEX trial_attempts_by_trial ON trial_attempts (trial_id);

-- Rows in insertion order (id) per trial.
CREATE TABLE metrics (
  id INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL REFERENCES trials (id),
  attempt INTEGER NOT NULL,
  step INTEGER,
  time_ms INTEGER NOT NULL,
  values_json TEXT NOT NULL
);
CREATE INDEX metrics_by_trial ON metrics (trial_id);
)sql",
    // Version 2: the cancelled state (a CHECK changes only by rebuilding the table, which
    // needs foreign_keys off: configure_connection migrates before turning them on), and
    // each experiment's sum of done trials' durations, for the time-to-completion estimate.
    R"sql(
CREATE TABLE trials_v2 (
  id TEXT PRIMARY KEY,
  experiment TEXT NOT NULL REFERENCES experiments (name),
  grid_index INTEGER NOT NULL,
  in_config INTEGER NOT NULL CHECK (in_config = 0 OR in_config = 1),
  state TEXT NOT NULL
    CHECK (state = 'pending' OR state = 'running' OR state = 'done' OR state = 'failed'
      OR state = 'cancelled'),
  hyperparameters TEXT NOT NULL,
  results TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_token TEXT,
  lease_expires_ms INTEGER,
  worker_id TEXT REFERENCES workers (id),
  started_ms INTEGER,
  finished_ms INTEGER,
  error TEXT,
  traceback TEXT,
  model_sha256 TEXT,
  model_size INTEGER,
  stop_requested INTEGER NOT NULL DEFAULT 0
);
INSERT INTO trials_v2 SELECT id, experiment, grid_index, in_config, state, hyperparameters,
  results, attempts, lease_token, lease_expires_ms, worker_id, started_ms, finished_ms, error,
  traceback, model_sha256, model_size, stop_requested FROM trials;
DROP TABLE trials;
ALTER TABLE trials_v2 RENAME TO trials;
CREATE INDEX trials_claimable ON trials (grid_index) WHERE in_config = 1 AND state = 'pending';
CREATE INDEX trials_leased ON trials (lease_expires_ms) WHERE state = 'running';
CREATE INDEX trials_by_experiment ON trials (experiment);
CREATE TRIGGER trials_counted_on_update AFTER UPDATE OF in_config, state ON trials
WHEN old.in_config IS NOT new.in_config OR old.state IS NOT new.state
BEGIN
  UPDATE trial_counts SET count = count - 1
  WHERE experiment = old.experiment AND in_config = old.in_config AND state = old.state;
  INSERT INTO trial_counts (experiment, in_config, state, count)
  VALUES (new.experiment, new.in_config, new.state, 1)
  ON CONFLICT DO UPDATE SET count = count + 1;
END;

CREATE TABLE trial_attempts_v2 (
  id INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL REFERENCES trials (id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL REFERENCES workers (id),
  lease_token TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  outcome TEXT NOT NULL CHECK (outcome = 'running' OR outcome = 'done' OR outcome = 'failed'
    OR outcome = 'released' OR outcome = 'expired' OR outcome = 'cancelled'),
  error TEXT
);
INSERT INTO trial_attempts_v2 SELECT id, trial_id, attempt, worker_id, lease_token, started_ms,
  ended_ms, outcome, error FROM trial_attempts;
DROP TABLE trial_attempts;
ALTER TABLE trial_attempts_v2 RENAME TO trial_attempts;
CREATE INDEX trial_attempts_by_trial ON trial_attempts (trial_id);

ALTER TABLE experiments ADD COLUMN done_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN done_ms_total INTEGER NOT NULL DEFAULT 0;
UPDATE experiments SET
  done_count = (SELECT count(*) FROM trials t WHERE t.experiment = experiments.name
    AND t.state = 'done' AND t.started_ms IS NOT NULL AND t.finished_ms IS NOT NULL),
  done_ms_total = (SELECT coalesce(sum(t.finished_ms - t.started_ms), 0) FROM trials t
    WHERE t.experiment = experiments.name AND t.state = 'done' AND t.started_ms IS NOT NULL
    AND t.finished_ms IS NOT NULL);
)sql",
    // v3: the id of each worker's last claim that got a lease (claims safe to send again).
    R"sql(
ALTER TABLE workers ADD COLUMN last_claim_id TEXT;
)sql",
    // v4: a trial's attempts are chained from its newest (trials.last_attempt_id, then each
    // row's previous_attempt_id) instead of indexed by trial id: that index is keyed by a
    // hash, so every claim wrote to a random page of it.
    R"sql(
ALTER TABLE trials ADD COLUMN last_attempt_id INTEGER;
ALTER TABLE trial_attempts ADD COLUMN previous_attempt_id INTEGER;
UPDATE trial_attempts SET previous_attempt_id = (SELECT max(p.id) FROM trial_attempts p
  WHERE p.trial_id = trial_attempts.trial_id AND p.id < trial_attempts.id);
UPDATE trials SET last_attempt_id = (SELECT max(a.id) FROM trial_attempts a
  WHERE a.trial_id = trials.id) WHERE id IN (SELECT trial_id FROM trial_attempts);
DROP INDEX trial_attempts_by_trial;
)sql",
    // v5: each experiment's config outside hyperparameters at its last sync (NULL: synced
    // before this was recorded) and the config generation its trial ids belong to (see Grid).
    R"sql(
ALTER TABLE experiments ADD COLUMN common_config TEXT;
ALTER TABLE experiments ADD COLUMN config_generation INTEGER NOT NULL DEFAULT 0;
)sql",
    // v6: the peak GPU memory a trial's completion reported (NULL: none reported), on the
    // trial and on the attempt that completed it.
    R"sql(
ALTER TABLE trials ADD COLUMN peak_gpu_memory_bytes INTEGER;
ALTER TABLE trial_attempts ADD COLUMN peak_gpu_memory_bytes INTEGER;
)sql",
    // v7: the attempt outcome 'lost' (its executor died by a signal mid-trial; the trial went
    // back to pending, the attempt counted). The CHECK changes only by rebuilding the table.
    R"sql(
CREATE TABLE trial_attempts_v7 (
  id INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL REFERENCES trials (id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL REFERENCES workers (id),
  lease_token TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  outcome TEXT NOT NULL CHECK (outcome = 'running' OR outcome = 'done' OR outcome = 'failed'
    OR outcome = 'released' OR outcome = 'expired' OR outcome = 'cancelled'
    OR outcome = 'lost'),
  error TEXT,
  previous_attempt_id INTEGER,
  peak_gpu_memory_bytes INTEGER
);
INSERT INTO trial_attempts_v7 SELECT id, trial_id, attempt, worker_id, lease_token, started_ms,
  ended_ms, outcome, error, previous_attempt_id, peak_gpu_memory_bytes FROM trial_attempts;
DROP TABLE trial_attempts;
ALTER TABLE trial_attempts_v7 RENAME TO trial_attempts;
)sql",
    // v8 (preemption, checkpoints): the attempt outcome 'preempted' (the worker was stopped
    // and handed the trial back; not counted), whether an attempt resumed from a checkpoint
    // and from which step (a checkpoint may have none), and each trial's current checkpoint:
    // the file checkpoints/<checkpoint_file> holds it, NULL columns when it has none. The
    // partial index lists the trials with one (a server start keeps only their files).
    R"sql(
CREATE TABLE trial_attempts_v8 (
  id INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL REFERENCES trials (id),
  attempt INTEGER NOT NULL,
  worker_id TEXT NOT NULL REFERENCES workers (id),
  lease_token TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  outcome TEXT NOT NULL CHECK (outcome = 'running' OR outcome = 'done' OR outcome = 'failed'
    OR outcome = 'released' OR outcome = 'expired' OR outcome = 'cancelled'
    OR outcome = 'lost' OR outcome = 'preempted'),
  error TEXT,
  previous_attempt_id INTEGER,
  peak_gpu_memory_bytes INTEGER,
  resumed INTEGER NOT NULL DEFAULT 0 CHECK (resumed = 0 OR resumed = 1),
  resumed_from_step INTEGER
);
INSERT INTO trial_attempts_v8 (id, trial_id, attempt, worker_id, lease_token, started_ms,
  ended_ms, outcome, error, previous_attempt_id, peak_gpu_memory_bytes)
  SELECT id, trial_id, attempt, worker_id, lease_token, started_ms, ended_ms, outcome, error,
  previous_attempt_id, peak_gpu_memory_bytes FROM trial_attempts;
DROP TABLE trial_attempts;
ALTER TABLE trial_attempts_v8 RENAME TO trial_attempts;

ALTER TABLE trials ADD COLUMN checkpoint_file TEXT;
ALTER TABLE trials ADD COLUMN checkpoint_step INTEGER;
ALTER TABLE trials ADD COLUMN checkpoint_kind TEXT
  CHECK (checkpoint_kind IS NULL OR checkpoint_kind = 'object' OR checkpoint_kind = 'file'
    OR checkpoint_kind = 'directory');
ALTER TABLE trials ADD COLUMN checkpoint_size INTEGER;
ALTER TABLE trials ADD COLUMN checkpoint_sha256 TEXT;
ALTER TABLE trials ADD COLUMN checkpoint_attempt INTEGER;
ALTER TABLE trials ADD COLUMN checkpoint_saved_ms INTEGER;
CREATE INDEX trials_with_checkpoint ON trials (id) WHERE checkpoint_file IS NOT NULL;
)sql",
    // v9: where in a Slurm cluster each worker runs, as JSON (NULL: not in Slurm, or
    // registered before this was recorded).
    R"sql(
ALTER TABLE workers ADD COLUMN slurm TEXT;
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

}  // namespace

Status configure_connection(sqlite3* db, const SqliteOptions& sqlite_options) {
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // The answer is the mode now in force: "memory" for an in-memory database.
  Result<std::string> journal_mode = query_text(db, "PRAGMA journal_mode = WAL");
  if (!journal_mode) return journal_mode.status();
  if (*journal_mode != "wal" && *journal_mode != "memory") {
    return Status::io_error("database refused WAL mode (journal_mode is " + *journal_mode + ")");
  }
  Status status = execute_script(
      db, std::string("PRAGMA synchronous = ") +
              (sqlite_options.synchronous_full ? "FULL" : "NORMAL") + "; PRAGMA cache_size = -" +
              std::to_string(kCacheSizeKib) +
              "; PRAGMA journal_size_limit = " + std::to_string(kJournalSizeLimitBytes) +
              // Temporary files in memory: the savepoint journal of a shared transaction
              // (GroupCommit) would otherwise spill to a file in /var/tmp past 64 KiB.
              "; PRAGMA temp_store = MEMORY;");
  if (!status) return status;

  Result<std::string> version_text = query_text(db, "PRAGMA user_version");
  if (!version_text) return version_text.status();
  int version = 0;
  std::from_chars(version_text->data(), version_text->data() + version_text->size(), version);
  if (version > kSchemaVersion) {
    return Status::io_error("database schema version " + std::to_string(version) +
                            " is newer than this gridexp understands (" +
                            std::to_string(kSchemaVersion) + ")");
  }
  int target = sqlite_options.migrate_up_to_version > 0
                   ? std::min(sqlite_options.migrate_up_to_version, kSchemaVersion)
                   : kSchemaVersion;
  for (; version < target; ++version) {
    std::string script = std::string("BEGIN IMMEDIATE;") + kMigrations[version] +
                         "PRAGMA user_version = " + std::to_string(version + 1) + "; COMMIT;";
    if (status = execute_script(db, script); !status) {
      if (sqlite3_get_autocommit(db) == 0) ignore_outcome(execute_script(db, "ROLLBACK"));
      return Status::io_error("migrating the database schema to version " +
                              std::to_string(version + 1) + ": " + status.message());
    }
  }
  // After the migrations: rebuilding a referenced table needs foreign keys off.
  return execute_script(db, "PRAGMA foreign_keys = ON;");
}

}  // namespace gridexp::sql
