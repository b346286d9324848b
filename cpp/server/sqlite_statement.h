// The SQLite statement helpers of SqliteStore (private to the sqlite_*.cpp files): errors as
// Status, a borrowed prepared statement (Statement) and the cache that keeps them prepared
// (StatementCache), and one-off scripts and queries for setting up a connection.
// Not thread-safe: a connection and its statements are used by one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "common/status.h"

namespace gridexp::sql {

// A failed SQLite call `rc` on `db` while `doing` something, as a Status: kInternal for a
// violated constraint (the store's bookkeeping is wrong, not the disk), kIoError otherwise.
Status sqlite_status(sqlite3* db, int rc, std::string_view doing);

// Runs `sql`, any number of statements, with no parameters and no rows read.
Status execute_script(sqlite3* db, const std::string& sql);

// The first column of the first row `sql` returns, as text.
Result<std::string> query_text(sqlite3* db, const char* sql);

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

// Binds `value` at `index`, or leaves the parameter NULL when there is none.
template <typename T>
Statement& bind_optional(Statement& statement, int index, const std::optional<T>& value) {
  if (value) statement.bind(index, *value);
  return statement;
}

// The prepared statements of one connection, each prepared once by its SQL text and kept
// until finalize_all() or the cache's end, either of which must come before the connection
// is closed.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;
  ~StatementCache() { finalize_all(); }

  void finalize_all();

  // `sql` must be one statement.
  Statement statement(std::string_view sql) {
    auto cached = statements_.find(sql);
    if (cached == statements_.end()) return prepare(sql);
    return Statement(cached->second);
  }

 private:
  struct TransparentStringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  Statement prepare(std::string_view sql);

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, TransparentStringHash, std::equal_to<>>
      statements_;
};

}  // namespace gridexp::sql
