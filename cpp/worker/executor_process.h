// ExecutorProcess: the child process that runs the user's Python (gridexp-executor), seen from
// the supervisor: the real ExecutorChannel. Spawns it as docs/executor.md describes, sends it
// commands, hands out its events (common/executor_protocol.h), relays its stdout/stderr line by
// line, and explains its death
// ("killed by signal 9 (SIGKILL) — possibly out of memory").
//
// The child is in its own process group, dies with the supervisor (PR_SET_PDEATHSIG), and
// gets the supervisor's environment without GRIDEXP_PASSWORD and GRIDEXP_PASSWORD_FILE: the
// user's code has no business with the server's password.
// send() and next_event() are for one thread (the supervisor's main loop); the output
// callback runs on internal reader threads, one for stdout and one for stderr.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/executor_protocol.h"
#include "common/status.h"
#include "worker/executor_channel.h"

namespace gridexp {

class ExecutorProcess final : public ExecutorChannel {
 public:
  static Result<std::unique_ptr<ExecutorProcess>> spawn(const ExecutorLaunch& launch);
  // spawn() as an ExecutorSpawner.
  static Result<std::unique_ptr<ExecutorChannel>> spawn_channel(const ExecutorLaunch& launch);
  ~ExecutorProcess() override;  // kills the child if it still runs, and reaps it
  ExecutorProcess(const ExecutorProcess&) = delete;
  ExecutorProcess& operator=(const ExecutorProcess&) = delete;

  Status send(const ExecutorCommand& command) override;
  std::optional<Result<ExecutorEvent>> next_event(std::chrono::milliseconds timeout) override;

  bool has_exited() override;
  // Why the child ended, for humans: "exited with status 3", "killed by signal 9 (SIGKILL) —
  // possibly out of memory". Meaningful once has_exited().
  std::string exit_description() const override;
  std::optional<int> exit_signal() const override;
  int exit_status() const { return exit_status_; }

  // Waits (at most `max_wait`) until what the child printed so far has reached the output
  // callback: stdout and the event pipe are separate, so a result can overtake the last lines
  // printed before it.
  void drain_output(std::chrono::milliseconds max_wait) override;

  // Asks the child to stop (SIGINT, as Ctrl-C would), waits up to `grace`, then SIGKILLs it.
  void interrupt_then_kill(std::chrono::milliseconds grace) override;
  void kill_now() override;
  pid_t pid() const override { return pid_; }

 private:
  ExecutorProcess() = default;
  void start_readers(int event_fd, int stdout_fd, int stderr_fd);
  void read_events(int fd);
  void read_output(int fd, bool is_stderr);
  bool reap(bool wait);
  bool reading_should_stop() const;

  struct Stream {
    int fd = -1;
    std::atomic<bool> busy{false};
    std::atomic<bool> finished{false};
  };

  pid_t pid_ = -1;
  Stream stdout_stream_;
  Stream stderr_stream_;
  Stream events_stream_;
  int command_fd_ = -1;
  std::function<void(const std::string&, bool)> on_output_;
  std::mutex mutex_;
  std::condition_variable event_ready_;
  std::deque<Result<ExecutorEvent>> events_;
  bool events_closed_ = false;
  bool exited_ = false;
  int wait_status_ = 0;
  int exit_status_ = -1;
  // Far in the future until the destructor has killed the child.
  std::atomic<std::chrono::steady_clock::time_point> stop_reading_at_{
      std::chrono::steady_clock::time_point::max()};
  std::thread event_reader_;
  std::thread stdout_reader_;
  std::thread stderr_reader_;
};

}  // namespace gridexp
