// ExecutorChannel: the supervisor's line to one executor, whatever runs it. ExecutorProcess
// (a gridexp-executor child) is the real one; tests put a scripted peer behind it. An
// ExecutorSpawner makes channels, so that whoever needs a fresh executor (a crash, the next
// GPU slot) can get one without knowing how it is made.
//
// A channel is used by one thread at a time (its session's); the output callback of an
// ExecutorLaunch may run on other threads.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/executor_protocol.h"
#include "common/status.h"

namespace gridexp {

struct ExecutorLaunch {
  std::filesystem::path executable;  // gridexp-executor
  std::filesystem::path workdir;     // the child's working directory
  // Variables set (or replaced) in the child's environment: CUDA_VISIBLE_DEVICES, GRIDEXP_SLOT.
  std::vector<std::pair<std::string, std::string>> environment;
  // Called with each line the child prints; `is_stderr` tells which stream.
  std::function<void(const std::string& line, bool is_stderr)> on_output;
};

class ExecutorChannel {
 public:
  virtual ~ExecutorChannel() = default;  // ends the executor if it still runs

  virtual Status send(const ExecutorCommand& command) = 0;

  // The next thing the executor sent, waiting at most `timeout`: an event, or an error naming
  // a line that is not one. Empty on timeout, or when the executor has died and everything it
  // sent was handed out (then has_exited() is true).
  virtual std::optional<Result<ExecutorEvent>> next_event(std::chrono::milliseconds timeout) = 0;

  virtual bool has_exited() = 0;
  // Why the executor ended, for humans ("exited with status 3"). Meaningful once has_exited().
  virtual std::string exit_description() const = 0;
  // The signal that ended it (9 for kill -9 or the kernel's OOM killer, 11 for a crash in
  // native code); nullopt while it runs or when it exited with a status of its own.
  virtual std::optional<int> exit_signal() const = 0;

  // Waits (at most `max_wait`) until what the executor printed so far reached the output
  // callback.
  virtual void drain_output(std::chrono::milliseconds max_wait) = 0;
  // Asks it to stop (SIGINT, as Ctrl-C would), waits up to `grace`, then kills it.
  virtual void interrupt_then_kill(std::chrono::milliseconds grace) = 0;
  virtual void kill_now() = 0;
  // Its process id, or -1 when it has none of its own.
  virtual pid_t pid() const = 0;
};

using ExecutorSpawner =
    std::function<Result<std::unique_ptr<ExecutorChannel>>(const ExecutorLaunch& launch)>;

}  // namespace gridexp
