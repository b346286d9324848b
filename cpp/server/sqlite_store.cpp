// SqliteStore: the schema and its migrations, the statement cache, and the transactions the
// Store methods run in (one each, or one for a batch of them under load: group commit).
//
// Hot-path shape: a claim probes two partial indexes (the expired-lease prefix of
// `trials_leased`, the first entry of `trials_claimable`) and reads its counts from
// `trial_counts`; every other lease call touches one trial by primary key. Only sync_grid
// scans the trials table.
#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "common/auth.h"
#include "common/random.h"
#include "server/group_commit.h"
#include "server/wal_checkpointer.h"

namespace gridexp {
namespace {

constexpr int kBusyTimeoutMs = 5'000;
// Enough that syncing a million-point grid does not thrash the primary-key index; more
// barely helps.
constexpr int kCacheSizeKib = 32 * 1024;
// The WAL file is truncated back to this after a checkpoint that emptied it.
constexpr int kJournalSizeLimitBytes = 64 * 1024 * 1024;
constexpr std::size_t kLeaseTokenBytes = 16;
// See SqliteStore::open: SQLite's own checkpoint (inside COMMIT) only once the log is this
// long (16 MiB), the background WalCheckpointer keeping it short otherwise.
constexpr int kBackstopCheckpointPages = 4000;
constexpr std::size_t kWorkerIdBytes = 8;
// How often sync_grid asks whether to stop: a few milliseconds of work apart.
constexpr std::uint64_t kPointsBetweenStopChecks = 4096;

Status interrupted() { return Status::unavailable("interrupted before the grid was recorded"); }

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
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));
// The first version with experiments.common_config and config_generation.
constexpr int kConfigsRecordedSinceVersion = 5;

// The ids of trial ?1's attempts, as the CTE `chain(id)`: from trials.last_attempt_id back
// along previous_attempt_id (schema v4).
constexpr const char* kAttemptChain =
    "WITH RECURSIVE chain(id) AS (SELECT last_attempt_id FROM trials WHERE id = ?1 "
    "AND last_attempt_id IS NOT NULL UNION ALL SELECT a.previous_attempt_id FROM "
    "trial_attempts a JOIN chain c ON a.id = c.id WHERE a.previous_attempt_id IS NOT NULL) ";

Status sqlite_status(sqlite3* db, int rc, std::string_view doing) {
  std::string message = "database error while " + std::string(doing) + ": " + sqlite3_errmsg(db);
  // A violated constraint means this file's bookkeeping is wrong, not the disk.
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return Status::internal(std::move(message));
  return Status::io_error(std::move(message));
}

// Never throws: text that is not valid UTF-8 is stored with replacement characters.
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

// One use of a cached prepared statement: bind, step, read columns. Going out of scope
// resets it so the cache can hand it out again; a statement must therefore not be borrowed
// twice at once. A failed preparation or bind is reported by the next step.
class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  explicit Statement(Status error) : status_(std::move(error)) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Statement& bind(int index, std::int64_t value) {
    if (stmt_ != nullptr) check_bind(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, std::string_view value) {
    if (stmt_ != nullptr) {
      check_bind(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8));
    }
    return *this;
  }

  // True while a row is available to read.
  Result<bool> next_row() {
    if (!status_) return status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_status(sqlite3_db_handle(stmt_), rc,
                         std::string("running `") + sqlite3_sql(stmt_) + "`");
  }
  // Calls `on_row()` for every row, reading the columns from this statement; stops at the
  // first error, the statement's or on_row's (when it returns a Status).
  template <typename OnRow>
  Status each_row(OnRow&& on_row) {
    for (;;) {
      Result<bool> row = next_row();
      if (!row) return row.status();
      if (!*row) return Status::ok();
      if constexpr (std::is_same_v<decltype(on_row()), void>) {
        on_row();
      } else if (Status status = on_row(); !status) {
        return status;
      }
    }
  }

  // Runs a statement that returns no rows.
  Status execute() {
    Result<bool> row = next_row();
    return row ? Status::ok() : row.status();
  }

  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  std::string text(int column) const {
    const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (data == nullptr) return {};
    return std::string(data, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  std::optional<std::string> optional_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return text(column);
  }
  std::optional<std::int64_t> optional_integer(int column) const {
    if (is_null(column)) return std::nullopt;
    return integer(column);
  }

 private:
  void check_bind(int rc) {
    if (rc != SQLITE_OK && status_) {
      status_ = sqlite_status(sqlite3_db_handle(stmt_), rc, "binding a parameter");
    }
  }

  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
};

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

template <typename T>
Statement& bind_optional(Statement& statement, int index, const std::optional<T>& value) {
  if (value) statement.bind(index, *value);
  return statement;
}

struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

Status execute_script(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::ok();
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return Status::io_error("database error while running `" + sql.substr(0, 60) + "`: " + message);
}

// The first column of the first row `sql` returns, as text.
Result<std::string> query_text(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return sqlite_status(db, rc, std::string("preparing `") + sql + "`");
  rc = sqlite3_step(stmt);
  std::string text;
  if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW) return sqlite_status(db, rc, std::string("running `") + sql + "`");
  return text;
}

// Sets the connection's PRAGMAs and migrates the schema to kSchemaVersion.
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

// Where a trial's lease stands for a caller that presented a valid token.
struct HeldLease {
  std::string worker_id;
  std::int64_t attempt = 0;
  bool stop_requested = false;
};

enum class TransactionKind { kRead, kWrite };

}  // namespace

struct SqliteStore::Impl {
  Impl(sqlite3* database, const Clock& store_clock, StoreOptions store_options)
      : db(database), clock(store_clock), options(store_options) {}
  ~Impl() {
    checkpointer.reset();
    for (auto& [sql, stmt] : statements) sqlite3_finalize(stmt);
    sqlite3_close(db);
  }

  // `sql` must be one statement; it is prepared once and kept for the store's lifetime.
  Statement statement(std::string_view sql) {
    auto cached = statements.find(sql);
    if (cached == statements.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) {
        return Statement(sqlite_status(db, rc, "preparing `" + std::string(sql) + "`"));
      }
      cached = statements.emplace(std::string(sql), stmt).first;
    }
    return Statement(cached->second);
  }

  Status execute(std::string_view sql) { return statement(sql).execute(); }

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

  // One store method's body waiting for a transaction.
  class QueuedCall {
   public:
    template <typename Run>
    QueuedCall(TransactionKind call_kind, Run& run)
        : kind(call_kind),
          body_(&run),
          invoke_([](void* body, TimeMs now) { return (*static_cast<Run*>(body))(now); }) {}

    // Runs the body; an exception is kept for its caller and counts as a failure.
    Status run(TimeMs now) {
      try {
        return invoke_(body_, now);
      } catch (...) {
        raised = std::current_exception();
        return Status::internal("the store call raised an exception");
      }
    }

    const TransactionKind kind;
    // Set when the body succeeded but its transaction did not commit.
    std::optional<Status> batch_failure;
    std::exception_ptr raised;

   private:
    void* body_;
    Status (*invoke_)(void* body, TimeMs now);
  };

  // GroupCommit's batch: as few transactions as the calls allow, normally one.
  void run_batch(const std::vector<QueuedCall*>& calls) {
    std::size_t next = 0;
    while (next < calls.size()) next = run_transaction(calls, next);
  }

  // Runs calls[first...] in one transaction until all have run or the transaction is lost
  // (an I/O error or a full disk makes SQLite roll all of it back); returns where the next
  // transaction starts. A lone call needs no savepoint: its failure rolls back everything.
  std::size_t run_transaction(const std::vector<QueuedCall*>& calls, std::size_t first) {
    bool writes =
        std::any_of(calls.begin() + static_cast<std::ptrdiff_t>(first), calls.end(),
                    [](const QueuedCall* call) { return call->kind == TransactionKind::kWrite; });
    bool alone = calls.size() - first == 1;
    std::vector<QueuedCall*> kept;  // succeeded: they stand or fall with the COMMIT
    auto fail_kept = [&](const Status& status) {
      for (QueuedCall* call : kept) call->batch_failure = status;
    };
    Status begun = execute(writes ? "BEGIN IMMEDIATE" : "BEGIN");
    if (!begun) {
      for (std::size_t i = first; i < calls.size(); ++i) calls[i]->batch_failure = begun;
      return calls.size();
    }
    ++transactions;
    for (std::size_t i = first; i < calls.size(); ++i) {
      QueuedCall& call = *calls[i];
      Status savepoint = alone ? Status::ok() : execute("SAVEPOINT store_call");
      if (!savepoint) {
        call.batch_failure = savepoint;
        fail_kept(savepoint);
        abandon_transaction();
        return i + 1;
      }
      Status status = call.run(clock.now_ms());
      if (sqlite3_get_autocommit(db) != 0) {  // SQLite rolled the whole transaction back
        Status lost = status ? Status::internal("the transaction was rolled back") : status;
        if (status) call.batch_failure = lost;
        fail_kept(lost);
        return i + 1;
      }
      if (alone) {
        if (status) kept.push_back(&call);
        break;
      }
      Status ended = status ? execute("RELEASE store_call") : rolled_back_to_savepoint();
      if (!ended) {
        if (status) call.batch_failure = ended;
        fail_kept(ended);
        abandon_transaction();
        return i + 1;
      }
      if (status) kept.push_back(&call);
    }
    if (kept.empty()) {
      abandon_transaction();
      return calls.size();
    }
    Status committed = execute("COMMIT");
    if (!committed) {
      fail_kept(committed);
      abandon_transaction();
    }
    return calls.size();
  }

  Status rolled_back_to_savepoint() {
    Status status = execute("ROLLBACK TO store_call");
    return status ? execute("RELEASE store_call") : status;
  }

  // An I/O error may already have ended the transaction.
  void abandon_transaction() {
    if (sqlite3_get_autocommit(db) == 0) ignore_outcome(execute("ROLLBACK"));
  }

  // Moves a running trial's lease expiry (a heartbeat, or a claim sent again).
  Status set_lease_expiry(const std::string& trial_id, TimeMs expires_ms) {
    return statement("UPDATE trials SET lease_expires_ms = ?2 WHERE id = ?1")
        .bind(1, trial_id)
        .bind(2, expires_ms)
        .execute();
  }

  // The lease that `worker_id`'s claim `claim_id` got, if it is its current trial's and still
  // live; its expiry moved to a full lease from `now`.
  Result<std::optional<Lease>> lease_of_claim(const std::string& worker_id,
                                              const std::string& claim_id, TimeMs now) {
    Statement held = statement(
        "SELECT t.id, t.experiment, t.hyperparameters, t.attempts, t.lease_token "
        "FROM workers w JOIN trials t ON t.id = w.current_trial "
        "WHERE w.id = ?1 AND w.last_claim_id = ?3 AND t.worker_id = ?1 "
        "AND t.state = 'running' AND t.lease_expires_ms > ?2");
    held.bind(1, worker_id).bind(2, now).bind(3, claim_id);
    Result<bool> found = held.next_row();
    if (!found) return found.status();
    if (!*found) return std::optional<Lease>();
    Result<nlohmann::json> hyperparameters = parse_stored_json(held.text(2), "hyperparameters");
    if (!hyperparameters) return hyperparameters.status();
    return std::optional<Lease>(
        Lease{held.text(0), held.text(1), std::move(hyperparameters).value(),
              static_cast<int>(held.integer(3)), held.text(4), now + options.lease_ms});
  }

  // Refuses with kNotFound or kConflict unless `lease_token` is the trial's live lease.
  Result<HeldLease> hold_lease(const std::string& trial_id, const std::string& lease_token,
                               TimeMs now) {
    std::string state;
    {
      Statement trial = statement(
          "SELECT state, lease_token, lease_expires_ms, worker_id, attempts, stop_requested "
          "FROM trials WHERE id = ?1");
      trial.bind(1, trial_id);
      Result<bool> found = trial.next_row();
      if (!found) return found.status();
      if (!*found) return Status::not_found("no trial " + trial_id);
      state = trial.text(0);
      std::optional<std::string> current_token = trial.optional_text(1);
      if (state == "running" && current_token &&
          constant_time_equals(*current_token, lease_token)) {
        TimeMs expires_ms = trial.integer(2);
        if (now < expires_ms) {
          return HeldLease{trial.text(3), trial.integer(4), trial.integer(5) != 0};
        }
        return Status::conflict("trial " + trial_id + ": lease expired " +
                                std::to_string(now - expires_ms) + " ms ago");
      }
    }
    return lease_conflict(trial_id, state, lease_token);
  }

  // Why `lease_token` no longer holds a trial in `state`, from the attempt history.
  Status lease_conflict(const std::string& trial_id, const std::string& state,
                        const std::string& lease_token) {
    std::string prefix = "trial " + trial_id + ": ";
    if (state == "done") return Status::conflict(prefix + "trial is already done");
    if (state == "failed") return Status::conflict(prefix + "trial has already failed");
    if (state == "cancelled") return Status::conflict(prefix + "trial was cancelled");
    Statement past = statement(std::string(kAttemptChain) +
                               "SELECT a.outcome FROM trial_attempts a JOIN chain c ON a.id = c.id "
                               "WHERE a.lease_token = ?2");
    past.bind(1, trial_id).bind(2, lease_token);
    Result<bool> found = past.next_row();
    if (!found) return found.status();
    if (!*found) {
      return Status::conflict(prefix + "lease token does not match the trial's lease (trial is " +
                              state + ")");
    }
    std::string reason = past.text(0) == "released" ? "lease was released" : "lease expired";
    if (state == "running") reason += "; the trial was re-leased to another worker";
    return Status::conflict(prefix + reason);
  }

  // Closes the history row of the trial's live lease.
  Status end_attempt(const std::string& trial_id, std::string_view outcome,
                     const std::optional<std::string>& error, TimeMs now) {
    Statement ended = statement(
        "UPDATE trial_attempts SET ended_ms = ?2, outcome = ?3, error = ?4 "
        "WHERE id = (SELECT last_attempt_id FROM trials WHERE id = ?1) AND outcome = 'running'");
    ended.bind(1, trial_id).bind(2, now).bind(3, outcome);
    return bind_optional(ended, 4, error).execute();
  }

  // kNotFound unless the trial exists.
  Status require_trial(const std::string& trial_id) {
    Result<bool> found =
        statement("SELECT 1 FROM trials WHERE id = ?1").bind(1, trial_id).next_row();
    if (!found) return found.status();
    return *found ? Status::ok() : Status::not_found("no trial " + trial_id);
  }

  Status touch_worker(const std::string& worker_id, TimeMs now) {
    return statement("UPDATE workers SET last_seen_ms = ?2 WHERE id = ?1")
        .bind(1, worker_id)
        .bind(2, now)
        .execute();
  }

  // The worker ended its lease on `trial_id`: no longer its current trial; counted.
  Status worker_lease_ended(const std::string& worker_id, const std::string& trial_id, TimeMs now,
                            int done, int failed) {
    return statement(
               "UPDATE workers SET last_seen_ms = ?2, current_trial = NULLIF(current_trial, ?3), "
               "trials_done = trials_done + ?4, trials_failed = trials_failed + ?5 "
               "WHERE id = ?1")
        .bind(1, worker_id)
        .bind(2, now)
        .bind(3, trial_id)
        .bind(4, done)
        .bind(5, failed)
        .execute();
  }

  // The body of claim_next_trial (see Store).
  Result<ClaimOutcome> claim(const std::string& worker_id, const std::string& claim_id,
                             TimeMs now) {
    if (Status touched = touch_worker(worker_id, now); !touched) return touched;
    if (sqlite3_changes(db) == 0) return Status::not_found("no worker " + worker_id);
    Result<std::int64_t> requeued = requeue_expired(now);
    if (!requeued) return requeued.status();

    ClaimOutcome outcome;
    Result<std::optional<Lease>> held =
        claim_id.empty() ? std::optional<Lease>() : lease_of_claim(worker_id, claim_id, now);
    if (!held) return held.status();
    if (*held) {
      outcome.lease = std::move(*held);
      outcome.resumed = true;
      Status status = set_lease_expiry(outcome.lease->trial_id, outcome.lease->lease_expires_ms);
      if (!status) return status;
    }
    if (!outcome.lease) {
      Statement next = statement(
          "SELECT id, experiment, hyperparameters, attempts FROM trials "
          "WHERE in_config = 1 AND state = 'pending' ORDER BY grid_index LIMIT 1");
      Result<bool> found = next.next_row();
      if (!found) return found.status();
      if (*found) {
        Result<nlohmann::json> hyperparameters = parse_stored_json(next.text(2), "hyperparameters");
        if (!hyperparameters) return hyperparameters.status();
        outcome.lease = Lease{next.text(0),
                              next.text(1),
                              std::move(hyperparameters).value(),
                              static_cast<int>(next.integer(3)) + 1,
                              random_hex(kLeaseTokenBytes),
                              now + options.lease_ms};
      }
    }
    if (outcome.lease && !outcome.resumed) {
      const Lease& lease = *outcome.lease;
      Status status = statement(
                          "INSERT INTO trial_attempts (trial_id, attempt, worker_id, lease_token, "
                          "started_ms, outcome, previous_attempt_id) VALUES (?1, ?2, ?3, ?4, ?5, "
                          "'running', (SELECT last_attempt_id FROM trials WHERE id = ?1))")
                          .bind(1, lease.trial_id)
                          .bind(2, lease.attempt)
                          .bind(3, worker_id)
                          .bind(4, lease.lease_token)
                          .bind(5, now)
                          .execute();
      if (!status) return status;
      const std::int64_t attempt_id = sqlite3_last_insert_rowid(db);
      // A claim starts the trial afresh: nothing of an earlier attempt stays attached.
      status = statement(
                   "UPDATE trials SET state = 'running', attempts = ?2, "
                   "lease_token = ?3, lease_expires_ms = ?4, worker_id = ?5, "
                   "started_ms = ?6, finished_ms = NULL, error = NULL, "
                   "traceback = NULL, model_sha256 = NULL, model_size = NULL, "
                   "stop_requested = 0, last_attempt_id = ?7 WHERE id = ?1")
                   .bind(1, lease.trial_id)
                   .bind(2, lease.attempt)
                   .bind(3, lease.lease_token)
                   .bind(4, lease.lease_expires_ms)
                   .bind(5, worker_id)
                   .bind(6, now)
                   .bind(7, attempt_id)
                   .execute();
      if (!status) return status;
      // A claim without an id leaves the last one alone: a claim is sent again only right
      // after it was first sent, never after a later claim.
      Statement current = statement(
          claim_id.empty()
              ? "UPDATE workers SET current_trial = ?2 WHERE id = ?1"
              : "UPDATE workers SET current_trial = ?2, last_claim_id = ?3 WHERE id = ?1");
      current.bind(1, worker_id).bind(2, lease.trial_id);
      if (!claim_id.empty()) current.bind(3, claim_id);
      status = current.execute();
      if (!status) return status;
    }

    Statement counts = statement(
        "SELECT state, count FROM trial_counts "
        "WHERE experiment = (SELECT name FROM experiments WHERE active = 1) "
        "AND in_config = 1");
    Status read = counts.each_row([&] {
      if (std::optional<TrialState> state = trial_state_from_string(counts.text(0))) {
        add_count(outcome, *state, counts.integer(1));
      }
    });
    if (!read) return read;
    return outcome;
  }

  // The body of complete (see Store); returns the worker that held the lease.
  Result<std::string> complete(const std::string& trial_id, const std::string& lease_token,
                               const nlohmann::json& results, TimeMs now) {
    Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    Status status = statement(
                        "UPDATE trials SET state = 'done', results = ?2, finished_ms = ?3, "
                        "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
                        .bind(1, trial_id)
                        .bind(2, dump_json(results))
                        .bind(3, now)
                        .execute();
    if (!status) return status;
    // Cancelled while it ran: its results stay (they may be partial), the trial is cancelled.
    const bool cancelled = held->stop_requested;
    status = cancelled ? end_cancelled(trial_id, "cancelled by the user", now)
                       : statement(
                             "UPDATE experiments SET done_count = done_count + 1, "
                             "done_ms_total = done_ms_total + ?2 - (SELECT started_ms FROM trials "
                             "WHERE id = ?1) WHERE name = (SELECT experiment FROM trials WHERE "
                             "id = ?1)")
                             .bind(1, trial_id)
                             .bind(2, now)
                             .execute();
    if (!status) return status;
    status = end_attempt(trial_id, cancelled ? "cancelled" : "done", std::nullopt, now);
    if (!status) return status;
    status = worker_lease_ended(held->worker_id, trial_id, now, /*done=*/cancelled ? 0 : 1,
                                /*failed=*/0);
    if (!status) return status;
    return held->worker_id;
  }

  // Ends a running trial whose cancel was requested: cancelled, lease dropped, any results
  // and model the worker sent kept.
  Status end_cancelled(const std::string& trial_id, const std::string& reason, TimeMs now) {
    return statement(
               "UPDATE trials SET state = 'cancelled', error = ?2, finished_ms = ?3, "
               "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
        .bind(1, trial_id)
        .bind(2, reason)
        .bind(3, now)
        .execute();
  }

  // The trials of `selection` in grid order, with their state and stop flag.
  struct Selected {
    std::string id;
    std::string state;
    bool stop_requested;
    bool in_config;
  };
  Result<std::vector<Selected>> select_trials(const TrialSelection& selection) {
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

  Result<std::int64_t> requeue_expired(TimeMs now) {
    struct Expired {
      std::string trial_id;
      std::int64_t attempts;
      std::string worker_id;
      std::string host;
      bool stop_requested;
    };
    // Collected first: the updates below change the index this query walks.
    std::vector<Expired> expired;
    {
      Statement query = statement(
          "SELECT t.id, t.attempts, t.worker_id, coalesce(w.host, '?'), t.stop_requested "
          "FROM trials t "
          "LEFT JOIN workers w ON w.id = t.worker_id "
          "WHERE t.state = 'running' AND t.lease_expires_ms <= ?1");
      query.bind(1, now);
      Status read = query.each_row([&] {
        expired.push_back(
            {query.text(0), query.integer(1), query.text(2), query.text(3), query.integer(4) != 0});
      });
      if (!read) return read;
    }
    for (const Expired& trial : expired) {
      Status moved;
      std::string_view outcome = "expired";
      if (trial.stop_requested) {
        outcome = "cancelled";
        moved = end_cancelled(trial.trial_id, "cancelled by the user (the worker's lease ran out)",
                              now);
      } else if (trial.attempts >= options.max_attempts) {
        std::string error =
            "lease expired " + std::to_string(trial.attempts) + " times (last worker " +
            trial.worker_id + " on " + trial.host +
            "); giving up after --max-attempts=" + std::to_string(options.max_attempts);
        moved = statement(
                    "UPDATE trials SET state = 'failed', error = ?2, finished_ms = ?3, "
                    "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
                    .bind(1, trial.trial_id)
                    .bind(2, error)
                    .bind(3, now)
                    .execute();
      } else {
        moved = statement(
                    "UPDATE trials SET state = 'pending', lease_token = NULL, "
                    "lease_expires_ms = NULL, worker_id = NULL, started_ms = NULL WHERE id = ?1")
                    .bind(1, trial.trial_id)
                    .execute();
      }
      if (!moved) return moved;
      if (Status ended = end_attempt(trial.trial_id, outcome, std::nullopt, now); !ended) {
        return ended;
      }
      Status freed =
          statement("UPDATE workers SET current_trial = NULL WHERE id = ?1 AND current_trial = ?2")
              .bind(1, trial.worker_id)
              .bind(2, trial.trial_id)
              .execute();
      if (!freed) return freed;
    }
    return static_cast<std::int64_t>(expired.size());
  }

  // Makes `experiment` the one active experiment; returns whether it already was.
  Result<bool> activate_experiment(const std::string& experiment, TimeMs now) {
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
    status = statement("UPDATE experiments SET active = 1 WHERE name = ?1")
                 .bind(1, experiment)
                 .execute();
    if (!status) return status;
    return was_active;
  }

  Result<bool> has_trials(const std::string& experiment) {
    return statement("SELECT 1 FROM trials WHERE experiment = ?1 LIMIT 1")
        .bind(1, experiment)
        .next_row();
  }

  // Records the experiment's config and generation (its row exists); returns whether the
  // generation was another.
  Result<bool> record_config(const Grid& grid) {
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
  Result<std::int64_t> add_trials_of(const Grid& grid, bool look_up,
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
  Status retire_trials_not_in(const Grid& grid, const std::function<bool()>& should_stop) {
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
  std::unordered_map<std::string, sqlite3_stmt*, TransparentStringHash, std::equal_to<>> statements;
};

namespace {

// Columns in the order read_trial reads them.
constexpr std::string_view kTrialColumns =
    "id, experiment, grid_index, in_config, state, hyperparameters, results, attempts, "
    "worker_id, started_ms, finished_ms, lease_expires_ms, error, traceback, model_sha256, "
    "model_size, stop_requested";

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
  return trial;
}

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
  return worker;
}

}  // namespace

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
  Status status = rc == SQLITE_OK ? configure_connection(db, sqlite_options)
                                  : sqlite_status(db, rc, "opening " + path);
  if (!status) {
    sqlite3_close(db);
    return Status(status.code(), path + ": " + status.message());
  }
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(db, clock, options));
  store->impl_->records_configs =
      sqlite_options.migrate_up_to_version == 0 ||
      sqlite_options.migrate_up_to_version >= kConfigsRecordedSinceVersion;
  if (path != ":memory:" && sqlite_options.checkpoint_period.count() > 0) {
    Result<std::unique_ptr<WalCheckpointer>> checkpointer =
        WalCheckpointer::start(path, sqlite_options.checkpoint_period);
    // Without it, SQLite's own checkpoints inside COMMIT carry on: slower, still correct.
    if (checkpointer) {
      // A backstop, not off: under a sustained stream of commits the background checkpoint
      // never catches up with the last frame, so the log would never restart and every
      // lookup in it grows slower. Past this many pages a COMMIT checkpoints as before — it
      // finds most frames already copied.
      Status off = execute_script(
          db, "PRAGMA wal_autocheckpoint = " + std::to_string(kBackstopCheckpointPages) + ";");
      if (off) store->impl_->checkpointer = std::move(checkpointer).value();
    }
  }
  return store;
}

SqliteStore::SqliteStore(sqlite3* db, const Clock& clock, StoreOptions options)
    : impl_(std::make_unique<Impl>(db, clock, options)) {}

SqliteStore::~SqliteStore() = default;

// Keeps writes proportional to what changed: re-syncing an unchanged grid only reads, and
// switching experiments flips in_config with two set-wide statements rather than a statement
// per trial.
Status SqliteStore::sync_grid(const Grid& grid, const std::function<bool()>& should_stop) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    const std::string& experiment = grid.experiment_name();
    Result<bool> had_trials = impl.has_trials(experiment);
    if (!had_trials) return had_trials.status();
    Result<bool> was_active = impl.activate_experiment(experiment, now);
    if (!was_active) return was_active.status();
    Result<bool> generation_changed = impl.record_config(grid);
    if (!generation_changed) return generation_changed.status();
    if (*generation_changed) {
      // A new run of the grid: no trial in config (of this experiment or the one active
      // before it) is one of its points.
      Status status = impl.execute("UPDATE trials SET in_config = 0 WHERE in_config = 1");
      if (!status) return status;
    } else if (!*was_active) {
      // Trials in config belonged to the previous experiment; this one's come back in
      // config, and retire_trials_not_in below takes out those the grid no longer has.
      Status status = impl.execute("UPDATE trials SET in_config = 0 WHERE in_config = 1");
      if (!status) return status;
      status = impl.statement("UPDATE trials SET in_config = 1 WHERE experiment = ?1")
                   .bind(1, experiment)
                   .execute();
      if (!status) return status;
    }
    Result<std::int64_t> inserted =
        impl.add_trials_of(grid, /*look_up=*/*had_trials && !*generation_changed, should_stop);
    if (!inserted) return inserted.status();
    if (*had_trials && !*generation_changed) {
      Status status = impl.retire_trials_not_in(grid, should_stop);
      if (!status) return status;
    }
    return impl
        .statement(
            "INSERT INTO trial_counts (experiment, in_config, state, count) "
            "VALUES (?1, 1, 'pending', ?2) "
            "ON CONFLICT DO UPDATE SET count = count + excluded.count")
        .bind(1, experiment)
        .bind(2, *inserted)
        .execute();
  });
}

Result<std::optional<RecordedConfig>> SqliteStore::recorded_config(const std::string& experiment) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead,
                       [&](TimeMs) -> Result<std::optional<RecordedConfig>> {
                         Statement query = impl.statement(
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
                       });
}

Result<WorkerRecord> SqliteStore::register_worker(const WorkerInfo& info) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Result<WorkerRecord> {
    WorkerRecord worker;
    worker.id = random_hex(kWorkerIdBytes);
    worker.info = info;
    worker.first_seen_ms = now;
    worker.last_seen_ms = now;
    Status status = impl.statement(
                            "INSERT INTO workers (id, host, pid, devices, version, "
                            "first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")
                        .bind(1, worker.id)
                        .bind(2, info.host)
                        .bind(3, info.pid)
                        .bind(4, dump_json(info.devices))
                        .bind(5, info.version)
                        .bind(6, now)
                        .execute();
    if (!status) return status;
    return worker;
  });
}

Result<std::vector<WorkerRecord>> SqliteStore::list_workers() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) -> Result<std::vector<WorkerRecord>> {
    Statement query = impl.statement(
        "SELECT id, host, pid, devices, version, first_seen_ms, last_seen_ms, current_trial, "
        "trials_done, trials_failed FROM workers ORDER BY first_seen_ms, id");
    return read_all(query, read_worker);
  });
}

Result<ClaimOutcome> SqliteStore::claim_next_trial(const std::string& worker_id,
                                                   const std::string& claim_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Result<ClaimOutcome> {
    return impl.claim(worker_id, claim_id, now);
  });
}

Result<HeartbeatReply> SqliteStore::heartbeat(const std::string& trial_id,
                                              const std::string& lease_token) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Result<HeartbeatReply> {
    Result<HeldLease> held = impl.hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    HeartbeatReply reply{now + impl.options.lease_ms, held->stop_requested};
    Status status = impl.set_lease_expiry(trial_id, reply.lease_expires_ms);
    if (!status) return status;
    status = impl.touch_worker(held->worker_id, now);
    if (!status) return status;
    return reply;
  });
}

Status SqliteStore::add_metrics(const std::string& trial_id, const std::string& lease_token,
                                const std::vector<MetricPoint>& points) {
  Impl& impl = *impl_;
  for (const MetricPoint& point : points) {
    if (!point.values.is_object()) {
      return Status::invalid_argument("metric values must be a JSON object");
    }
  }
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    Result<HeldLease> held = impl.hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    for (const MetricPoint& point : points) {
      Statement insert = impl.statement(
          "INSERT INTO metrics (trial_id, attempt, step, time_ms, values_json) "
          "VALUES (?1, ?2, ?3, ?4, ?5)");
      insert.bind(1, trial_id).bind(2, held->attempt);
      bind_optional(insert, 3, point.step).bind(4, point.time_ms).bind(5, dump_json(point.values));
      if (Status status = insert.execute(); !status) return status;
    }
    return impl.touch_worker(held->worker_id, now);
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
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    Result<HeldLease> held = impl.hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    Status status =
        impl.statement("UPDATE trials SET model_sha256 = ?2, model_size = ?3 WHERE id = ?1")
            .bind(1, trial_id)
            .bind(2, model.sha256)
            .bind(3, model.size_bytes)
            .execute();
    if (!status) return status;
    return impl.touch_worker(held->worker_id, now);
  });
}

Status SqliteStore::complete(const std::string& trial_id, const std::string& lease_token,
                             const nlohmann::json& results) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    return impl.complete(trial_id, lease_token, results, now).status();
  });
}

Result<ClaimOutcome> SqliteStore::complete_and_claim(const std::string& trial_id,
                                                     const std::string& lease_token,
                                                     const nlohmann::json& results,
                                                     const std::string& claim_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Result<ClaimOutcome> {
    Result<std::string> worker_id = impl.complete(trial_id, lease_token, results, now);
    if (!worker_id) return worker_id.status();
    return impl.claim(*worker_id, claim_id, now);
  });
}

Status SqliteStore::fail(const std::string& trial_id, const std::string& lease_token,
                         const std::string& error, const std::string& traceback) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    Result<HeldLease> held = impl.hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    Status status = impl.statement(
                            "UPDATE trials SET state = 'failed', error = ?2, traceback = ?3, "
                            "finished_ms = ?4, lease_token = NULL, lease_expires_ms = NULL "
                            "WHERE id = ?1")
                        .bind(1, trial_id)
                        .bind(2, error)
                        .bind(3, traceback)
                        .bind(4, now)
                        .execute();
    if (!status) return status;
    if (held->stop_requested) {
      status = impl.end_cancelled(trial_id, "cancelled by the user; the trial ended with: " + error,
                                  now);
      if (!status) return status;
      status = impl.end_attempt(trial_id, "cancelled", error, now);
      if (!status) return status;
      return impl.worker_lease_ended(held->worker_id, trial_id, now, /*done=*/0, /*failed=*/0);
    }
    status = impl.end_attempt(trial_id, "failed", error, now);
    if (!status) return status;
    return impl.worker_lease_ended(held->worker_id, trial_id, now, /*done=*/0, /*failed=*/1);
  });
}

Status SqliteStore::release(const std::string& trial_id, const std::string& lease_token) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs now) -> Status {
    Result<HeldLease> held = impl.hold_lease(trial_id, lease_token, now);
    if (!held) return held.status();
    if (held->stop_requested) {
      Status status = impl.end_cancelled(trial_id, "cancelled by the user", now);
      if (!status) return status;
      status = impl.end_attempt(trial_id, "cancelled", std::nullopt, now);
      if (!status) return status;
      return impl.worker_lease_ended(held->worker_id, trial_id, now, /*done=*/0, /*failed=*/0);
    }
    Status status = impl.statement(
                            "UPDATE trials SET state = 'pending', attempts = attempts - 1, "
                            "lease_token = NULL, lease_expires_ms = NULL, worker_id = NULL, "
                            "started_ms = NULL WHERE id = ?1")
                        .bind(1, trial_id)
                        .execute();
    if (!status) return status;
    status = impl.end_attempt(trial_id, "released", std::nullopt, now);
    if (!status) return status;
    return impl.worker_lease_ended(held->worker_id, trial_id, now, /*done=*/0, /*failed=*/0);
  });
}

Result<std::int64_t> SqliteStore::requeue_expired() {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite,
                       [&](TimeMs now) { return impl.requeue_expired(now); });
}

Result<std::vector<ExperimentSummary>> SqliteStore::list_experiments() {
  Impl& impl = *impl_;
  return impl.transact(
      TransactionKind::kRead, [&](TimeMs) -> Result<std::vector<ExperimentSummary>> {
        Statement query = impl.statement(
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
          add_count(summary, *state, query.integer(4));
          return Status::ok();
        });
        if (!read) return read;
        // Running trials are few (one per worker): the partial index lists them cheaply.
        Statement running = impl.statement(
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
      });
}

Result<std::vector<TrialRecord>> SqliteStore::list_trials(const std::string& experiment) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) -> Result<std::vector<TrialRecord>> {
    {
      Statement known = impl.statement("SELECT 1 FROM experiments WHERE name = ?1");
      Result<bool> found = known.bind(1, experiment).next_row();
      if (!found) return found.status();
      if (!*found) return Status::not_found("no experiment " + experiment);
    }
    static const std::string kSql = "SELECT " + std::string(kTrialColumns) +
                                    " FROM trials WHERE experiment = ?1 ORDER BY grid_index, id";
    Statement query = impl.statement(kSql);
    query.bind(1, experiment);
    return read_all(query, read_trial);
  });
}

Result<TrialRecord> SqliteStore::get_trial(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) -> Result<TrialRecord> {
    static const std::string kSql =
        "SELECT " + std::string(kTrialColumns) + " FROM trials WHERE id = ?1";
    Statement query = impl.statement(kSql);
    Result<bool> found = query.bind(1, trial_id).next_row();
    if (!found) return found.status();
    if (!*found) return Status::not_found("no trial " + trial_id);
    return read_trial(query);
  });
}

Result<std::vector<MetricPoint>> SqliteStore::list_metrics(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) -> Result<std::vector<MetricPoint>> {
    if (Status known = impl.require_trial(trial_id); !known) return known;
    Statement query = impl.statement(
        "SELECT step, time_ms, values_json FROM metrics WHERE trial_id = ?1 ORDER BY id");
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
  });
}

Result<std::vector<AttemptRecord>> SqliteStore::list_attempts(const std::string& trial_id) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kRead, [&](TimeMs) -> Result<std::vector<AttemptRecord>> {
    if (Status known = impl.require_trial(trial_id); !known) return known;
    Statement query = impl.statement(
        std::string(kAttemptChain) +
        "SELECT a.attempt, a.worker_id, a.started_ms, a.ended_ms, a.outcome, a.error "
        "FROM trial_attempts a JOIN chain c ON a.id = c.id ORDER BY a.id");
    query.bind(1, trial_id);
    std::vector<AttemptRecord> attempts;
    Status read = query.each_row([&] {
      attempts.push_back(AttemptRecord{static_cast<int>(query.integer(0)), query.text(1),
                                       query.integer(2), query.optional_integer(3), query.text(4),
                                       query.optional_text(5)});
    });
    if (!read) return read;
    return attempts;
  });
}

Result<std::vector<std::string>> SqliteStore::retry_trials(const TrialSelection& selection) {
  Impl& impl = *impl_;
  return impl.transact(TransactionKind::kWrite, [&](TimeMs) -> Result<std::vector<std::string>> {
    Result<std::vector<Impl::Selected>> selected = impl.select_trials(selection);
    if (!selected) return selected.status();
    std::vector<std::string> changed;
    for (const Impl::Selected& trial : *selected) {
      // A point no longer in the config would never be handed out again.
      if ((trial.state != "failed" && trial.state != "cancelled") || !trial.in_config) continue;
      Status status = impl.statement(
                              "UPDATE trials SET state = 'pending', attempts = 0, results = NULL, "
                              "worker_id = NULL, started_ms = NULL, finished_ms = NULL, "
                              "error = NULL, traceback = NULL, model_sha256 = NULL, "
                              "model_size = NULL, stop_requested = 0 WHERE id = ?1")
                          .bind(1, trial.id)
                          .execute();
      if (!status) return status;
      changed.push_back(trial.id);
    }
    return changed;
  });
}

Result<std::vector<std::string>> SqliteStore::cancel_trials(const TrialSelection& selection) {
  Impl& impl = *impl_;
  return impl.transact(
      TransactionKind::kWrite, [&](TimeMs now) -> Result<std::vector<std::string>> {
        Result<std::vector<Impl::Selected>> selected = impl.select_trials(selection);
        if (!selected) return selected.status();
        std::vector<std::string> changed;
        for (const Impl::Selected& trial : *selected) {
          Status status;
          if (trial.state == "pending") {
            status =
                impl.statement(
                        "UPDATE trials SET state = 'cancelled', error = 'cancelled by the user', "
                        "finished_ms = ?2 WHERE id = ?1")
                    .bind(1, trial.id)
                    .bind(2, now)
                    .execute();
          } else if (trial.state == "running" && !trial.stop_requested) {
            status = impl.statement("UPDATE trials SET stop_requested = 1 WHERE id = ?1")
                         .bind(1, trial.id)
                         .execute();
          } else {
            continue;
          }
          if (!status) return status;
          changed.push_back(trial.id);
        }
        return changed;
      });
}

StoreStats SqliteStore::stats() const {
  GroupCommitStats served = impl_->group_commit.stats();
  return StoreStats{served.calls, impl_->transactions.load(),
                    static_cast<std::int64_t>(impl_->group_commit.waiting())};
}

}  // namespace gridexp
