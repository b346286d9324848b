#include "server/wal_checkpointer.h"

#include <sqlite3.h>

namespace gridexp {

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::start(const std::string& path,
                                                                std::chrono::milliseconds period) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::io_error("opening " + path + " for checkpoints: " + message);
  }
  // A checkpoint needs a connection that has read the database (and so knows it is in WAL
  // mode); before that it reports nothing to copy.
  char* error = nullptr;
  rc = sqlite3_exec(db, "PRAGMA journal_mode", nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    sqlite3_close(db);
    return Status::io_error("reading " + path + " for checkpoints: " + message);
  }
  return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(db, period));
}

WalCheckpointer::WalCheckpointer(sqlite3* db, std::chrono::milliseconds period)
    : db_(db), period_(period), thread_([this] { run(); }) {}

WalCheckpointer::~WalCheckpointer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  checkpoint_once();
  sqlite3_close(db_);
}

int WalCheckpointer::checkpoint_once() {
  int log_pages = 0;
  int copied_pages = 0;
  int rc =
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &copied_pages);
  if (rc != SQLITE_OK || copied_pages <= 0) return 0;
  pages_copied_ += copied_pages;
  return copied_pages;
}

void WalCheckpointer::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    checkpoint_once();
    lock.lock();
    wake_.wait_for(lock, period_, [this] { return stopping_; });
  }
}

}  // namespace gridexp
