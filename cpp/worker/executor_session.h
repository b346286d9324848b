// ExecutorSession: one executor as the supervisor's typed conversation with it. start()
// spawns it (through an ExecutorSpawner) and waits until experiment.py is imported and the
// dataset built; then trials go to it one at a time, and what it prints is routed to the
// trial it runs (that trial's TrialLink, and the console with the trial's id).
//
// One session per executor: a worker with several GPUs would hold one per slot. Its methods
// are for one thread (the slot's); the output routing is safe from the reader threads.
// A session is neither copied nor moved (its executor's output callback points at it).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/executor_protocol.h"
#include "common/status.h"
#include "worker/executor_channel.h"
#include "worker/progress.h"
#include "worker/server_api.h"

namespace gridexp {

class ExecutorSession {
 public:
  // `launch.on_output` is the session's own; whatever the caller puts there is replaced.
  ExecutorSession(ExecutorSpawner spawn, ExecutorLaunch launch, Progress& progress,
                  std::chrono::milliseconds event_poll = std::chrono::milliseconds(100));
  ~ExecutorSession();  // ends the executor first: its reader threads use the routing
  ExecutorSession(const ExecutorSession&) = delete;
  ExecutorSession& operator=(const ExecutorSession&) = delete;

  // Starts an executor and sends `start`; ok once it answered ready. A fatal answer is
  // kInvalidArgument with file:line and the error (the traceback goes to the console); an
  // executor that died, kIoError; `interrupted` while waiting, kUnavailable (the executor is
  // then interrupted and killed). No executor is kept after a failure.
  Status start(const StartCommand& start, const std::atomic<bool>& interrupted,
               std::chrono::milliseconds interrupt_grace);
  bool has_executor() const { return channel_ != nullptr; }
  // When the (idle) executor has died: why, and the session no longer holds it.
  std::optional<std::string> take_exit_if_dead();

  // Routes output to `trial_id` (and `link`, which may be null) and sends the run command.
  // A failed send ends the executor and the routing.
  Status run(const RunCommand& command, TrialLink* link);
  Status stop(const std::string& trial_id, std::optional<StopReason> reason);
  std::optional<Result<ExecutorEvent>> next_event(std::chrono::milliseconds timeout);
  bool has_exited();
  std::string exit_description() const;
  std::optional<int> exit_signal() const;
  // Lets the last printed lines reach the trial, then routes output to nobody.
  void end_trial_output(std::chrono::milliseconds drain);

  // Ending the executor: these also drop it from the session.
  void interrupt_then_kill(std::chrono::milliseconds grace);
  void kill_now();
  void forget_dead_executor();

  // The executor's process id, or -1.
  pid_t pid() const { return channel_ ? channel_->pid() : -1; }

 private:
  void on_output(const std::string& line);
  void route_output(const std::string& trial_id, TrialLink* link);
  Status await_ready(const std::atomic<bool>& interrupted, std::chrono::milliseconds grace);

  ExecutorSpawner spawn_;
  ExecutorLaunch launch_;
  Progress& progress_;
  std::chrono::milliseconds event_poll_;
  std::unique_ptr<ExecutorChannel> channel_;

  std::mutex output_mutex_;
  std::string output_trial_id_;
  TrialLink* output_link_ = nullptr;
};

}  // namespace gridexp
