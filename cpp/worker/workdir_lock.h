// WorkdirLock: one gridexp-worker per working directory.
//
// Two workers in one --workdir would unpack scripts.zip over each other, share one outbox and
// one model directory, and run experiment.py in the same current directory. The lock is an
// exclusive flock(2) on <workdir>/.gridexp-worker/lock, held for the life of the process (the
// kernel drops it when the process dies, kill -9 included, so a stale file never blocks a
// restart); the file holds the owner's pid and host for the refusal message.
// Not thread-safe; the supervisor's main thread owns it.
#pragma once

#include <filesystem>
#include <memory>

#include "common/status.h"

namespace gridexp {

class WorkdirLock {
 public:
  // kConflict, naming the owner, when another live process holds the lock.
  static Result<std::unique_ptr<WorkdirLock>> acquire(const std::filesystem::path& state_dir);
  ~WorkdirLock();
  WorkdirLock(const WorkdirLock&) = delete;
  WorkdirLock& operator=(const WorkdirLock&) = delete;

 private:
  explicit WorkdirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace gridexp
