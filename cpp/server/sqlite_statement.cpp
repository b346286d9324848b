// See sqlite_statement.h.
#include "server/sqlite_statement.h"

namespace gridexp::sql {

Status sqlite_status(sqlite3* db, int rc, std::string_view doing) {
  std::string message = "database error while " + std::string(doing) + ": " + sqlite3_errmsg(db);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return Status::internal(std::move(message));
  return Status::io_error(std::move(message));
}

Status execute_script(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  if (rc == SQLITE_OK) return Status::ok();
  std::string message = error != nullptr ? error : sqlite3_errstr(rc);
  sqlite3_free(error);
  return Status::io_error("database error while running `" + sql.substr(0, 60) + "`: " + message);
}

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

void StatementCache::finalize_all() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  statements_.clear();
}

Statement StatementCache::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Statement(sqlite_status(db_, rc, "preparing `" + std::string(sql) + "`"));
  }
  return Statement(statements_.emplace(std::string(sql), stmt).first->second);
}

}  // namespace gridexp::sql
