// TrialRunner: runs one trial on an ExecutorSession to its end, and owns the stop/kill
// policy: a lost lease or a cancellation sends `stop` (reason "lease lost", "cancelled") and,
// when the trial has not ended within the stop grace, kills the executor. A stop signal to the
// worker (`interrupted`) preempts the trial: `stop` with reason "preempted", then up to the
// preempt grace (--grace_seconds) for run_one to return or raise, after which (or at once
// when StopPolicy::kill_now is set: a second signal) the executor is killed. A result that
// comes after that stop ends the trial as finished (delivered) unless run_one saw the stop
// (stop_observed): then, as with a failure after the stop, the trial ends preempted
// (kInterrupted). Metrics go to the trial's TrialLink and the console; checkpoint events go
// to the caller's handler.
//
// The clock and the graces are injectable (StopPolicy, SteadyNow), so tests need not wait
// 30 s. One runner per session; run() is for that session's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/executor_session.h"
#include "worker/progress.h"
#include "worker/server_api.h"

namespace gridexp {

struct StopPolicy {
  std::chrono::milliseconds event_poll{100};
  std::chrono::milliseconds interrupt_grace{3000};
  std::chrono::milliseconds stop_grace{30'000};
  // How long the lines printed just before a result may take to arrive.
  std::chrono::milliseconds output_drain{500};
  // How long a preempted trial may take to end (--grace_seconds).
  std::chrono::milliseconds preempt_grace{60'000};
  // Set (a second stop signal): a preempted trial's executor is killed at once. Null: never.
  const std::atomic<bool>* kill_now = nullptr;
};

using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

enum class TrialEnd {
  kFinished,     // succeeded or failed: the outcome is to be delivered
  kLeaseLost,    // another worker completes it
  kInterrupted,  // the worker was interrupted: the trial is preempted (handed back)
  kNotStarted,   // the executor was gone before the trial reached it: not the trial's fault
  // The executor died by a signal mid-trial (kill -9, the OOM killer, a native crash): the
  // attempt is lost and the server requeues the trial (error says why).
  kExecutorLost,
};

struct TrialRun {
  TrialEnd end = TrialEnd::kFinished;
  bool succeeded = false;
  nlohmann::json results;
  std::string error;
  std::string traceback;
  std::optional<std::filesystem::path> model_path;
  std::optional<std::int64_t> peak_gpu_memory_bytes;  // from the result or failed event
  bool out_of_memory = false;  // it failed with CUDA out-of-memory (its failed event says so)
  bool cancelled = false;      // a user cancelled it while it ran (the server ends it cancelled)
};

// Takes a checkpoint event of the trial in hand (whose file it then owns).
using CheckpointHandler = std::function<void(const CheckpointEvent& event)>;

class TrialRunner {
 public:
  TrialRunner(ExecutorSession& session, Progress& progress, const std::atomic<bool>& interrupted,
              StopPolicy policy = {}, SteadyNow now = std::chrono::steady_clock::now);

  // Runs `command` (its trial {"id", "attempt", "experiment", "hyperparameters"}); `link` is
  // null in a dry run. The link keeps running afterwards, for the delivery. Checkpoint events
  // go to `on_checkpoint` (which checks whose they are), when there is one.
  TrialRun run(const RunCommand& command, TrialLink* link, const CheckpointHandler& on_checkpoint);

  const StopPolicy& policy() const { return policy_; }

 private:
  struct Watch;
  // True when the event ended the trial.
  bool on_event(const ExecutorEvent& event, Watch& watch, TrialRun& run);
  // True when the executor's state, the flags or the clock ended the trial.
  bool check_executor(Watch& watch, TrialRun& run);
  void kill_for_stop(Watch& watch, TrialRun& run);
  // The worker got a stop signal: stop, then the grace; true once the trial has ended.
  bool preempt(Watch& watch, TrialRun& run);

  ExecutorSession& session_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  StopPolicy policy_;
  SteadyNow now_;
};

}  // namespace gridexp
