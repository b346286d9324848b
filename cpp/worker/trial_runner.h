// TrialRunner: runs one trial on an ExecutorSession to its end, and owns the stop/kill
// policy: a lost lease or a cancellation sends `stop` and, when the trial has not ended within
// the stop grace, kills the executor; Ctrl-C interrupts the executor (SIGINT, then SIGKILL
// after the interrupt grace). Metrics go to the trial's TrialLink and the console.
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
};

using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;

enum class TrialEnd {
  kFinished,     // succeeded or failed: the outcome is to be delivered
  kLeaseLost,    // another worker completes it
  kInterrupted,  // the worker was interrupted: release the trial
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

class TrialRunner {
 public:
  TrialRunner(ExecutorSession& session, Progress& progress, const std::atomic<bool>& interrupted,
              StopPolicy policy = {}, SteadyNow now = std::chrono::steady_clock::now);

  // Runs `trial` ({"id", "attempt", "experiment", "hyperparameters"}); `link` is null in a dry
  // run. The link keeps running afterwards, for the delivery.
  TrialRun run(const nlohmann::json& trial, TrialLink* link);

  const StopPolicy& policy() const { return policy_; }

 private:
  struct Watch;
  // True when the event ended the trial.
  bool on_event(const ExecutorEvent& event, Watch& watch, TrialRun& run);
  // True when the executor's state, the flags or the clock ended the trial.
  bool check_executor(Watch& watch, TrialRun& run);
  void kill_for_stop(Watch& watch, TrialRun& run);

  ExecutorSession& session_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  StopPolicy policy_;
  SteadyNow now_;
};

}  // namespace gridexp
