// WalCheckpointer: copies a WAL-mode SQLite database's write-ahead log back into the database
// file on a thread and a connection of its own.
//
// Left to itself, SQLite checkpoints inside whichever COMMIT pushes the log past 1000 pages:
// two fsyncs (1-20 ms each) under the store's one mutex, which every other request then waits
// for — the tail of the claim latency. With a WalCheckpointer this thread runs PASSIVE
// checkpoints, which never block a writer, every `period`, and the store's connection
// checkpoints itself only as a backstop, when a sustained stream of commits outruns this
// thread (the log can restart only once a checkpoint has copied its last frame). Safe to
// destroy from any thread; the destructor stops the thread and runs one last checkpoint.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"

struct sqlite3;

namespace gridexp {

class WalCheckpointer {
 public:
  // Opens its own connection to the database at `path` (which must already be in WAL mode).
  static Result<std::unique_ptr<WalCheckpointer>> start(const std::string& path,
                                                        std::chrono::milliseconds period);
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Checkpoints that copied at least one page (for tests and diagnostics).
  std::int64_t pages_copied() const { return pages_copied_; }

 private:
  WalCheckpointer(sqlite3* db, std::chrono::milliseconds period);
  void run();
  // One passive checkpoint; returns the pages it copied.
  int checkpoint_once();

  sqlite3* db_;
  const std::chrono::milliseconds period_;
  std::atomic<std::int64_t> pages_copied_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gridexp
