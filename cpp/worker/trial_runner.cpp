// TrialRunner: the loop that watches one trial's executor, and the stop/kill policy.
#include "worker/trial_runner.h"

#include <cstdio>
#include <utility>
#include <variant>

namespace gridexp {

struct TrialRunner::Watch {
  std::string trial_id;
  TrialLink* link = nullptr;
  const CheckpointHandler* on_checkpoint = nullptr;
  bool stop_sent = false;
  std::chrono::steady_clock::time_point stop_sent_at;
  bool preempt_sent = false;
  std::chrono::steady_clock::time_point preempt_sent_at;
  std::string fatal_reason;
};

namespace {

// "60 s", "0.5 s".
std::string seconds_text(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(duration.count()) / 1000);
  return text;
}

}  // namespace

TrialRunner::TrialRunner(ExecutorSession& session, Progress& progress,
                         const std::atomic<bool>& interrupted, StopPolicy policy, SteadyNow now)
    : session_(session),
      progress_(progress),
      interrupted_(interrupted),
      policy_(policy),
      now_(std::move(now)) {}

TrialRun TrialRunner::run(const RunCommand& command, TrialLink* link,
                          const CheckpointHandler& on_checkpoint) {
  const nlohmann::json& trial = command.trial;
  Watch watch;
  watch.trial_id = command.trial_id;
  watch.link = link;
  watch.on_checkpoint = on_checkpoint ? &on_checkpoint : nullptr;
  TrialRun run;
  if (Status sent = session_.run(command, link); !sent) {
    progress_.message("the executor is gone (" + sent.message() + "); starting a new one");
    run.end = TrialEnd::kNotStarted;
    return run;
  }
  progress_.trial_started(watch.trial_id, trial.value("attempt", 1), trial["hyperparameters"]);
  while (true) {
    // Events first: a result that has arrived is delivered, even when interrupted.
    // Interrupted: the check that sends the stop comes at once.
    std::optional<Result<ExecutorEvent>> event = session_.next_event(
        interrupted_ && !watch.preempt_sent ? std::chrono::milliseconds(0) : policy_.event_poll);
    if (event && !*event) {
      progress_.message("unexpected line from the executor: " + event->status().message());
      continue;
    }
    if (event ? on_event(**event, watch, run) : check_executor(watch, run)) break;
  }
  run.cancelled = link != nullptr && link->stop_requested();
  session_.end_trial_output(policy_.output_drain);
  if (run.end == TrialEnd::kFinished && link != nullptr && link->lease_lost()) {
    run.end = TrialEnd::kLeaseLost;
  }
  return run;
}

bool TrialRunner::on_event(const ExecutorEvent& event, Watch& watch, TrialRun& run) {
  if (const auto* metrics = std::get_if<MetricsEvent>(&event)) {
    nlohmann::json step = metrics->step ? nlohmann::json(*metrics->step) : nlohmann::json();
    if (watch.link) {
      watch.link->push_metrics(
          {{"step", step}, {"time_ms", metrics->time_ms}, {"values", metrics->values}});
    }
    progress_.metrics(metrics->values, step);
    return false;
  }
  if (const auto* checkpoint = std::get_if<CheckpointEvent>(&event)) {
    if (watch.on_checkpoint != nullptr) (*watch.on_checkpoint)(*checkpoint);
    return false;
  }
  if (const auto* result = std::get_if<ResultEvent>(&event);
      result && result->trial_id == watch.trial_id) {
    if (watch.preempt_sent && result->stop_observed) {
      // It stopped early for the preemption: its results are not the trial's.
      run.end = TrialEnd::kInterrupted;
      if (result->model_path) run.model_path = *result->model_path;
      return true;
    }
    run.succeeded = true;
    run.results = result->results;
    if (result->model_path) run.model_path = *result->model_path;
    run.peak_gpu_memory_bytes = result->peak_gpu_memory_bytes;
    return true;
  }
  if (const auto* failed = std::get_if<FailedEvent>(&event);
      failed && failed->trial_id == watch.trial_id) {
    if (watch.preempt_sent) run.end = TrialEnd::kInterrupted;
    run.succeeded = false;
    run.error = failed->error;
    run.traceback = failed->traceback;
    run.peak_gpu_memory_bytes = failed->peak_gpu_memory_bytes;
    run.out_of_memory = failed->out_of_memory;
    return true;
  }
  if (const auto* fatal = std::get_if<FatalEvent>(&event)) watch.fatal_reason = fatal->error;
  return false;
}

bool TrialRunner::preempt(Watch& watch, TrialRun& run) {
  if (!watch.preempt_sent) {
    watch.preempt_sent = true;
    watch.preempt_sent_at = now_();
    ignore_outcome(session_.stop(watch.trial_id, StopReason::kPreempted));  // a dead one: below
    std::string note = "the worker is stopping: trial " + watch.trial_id +
                       " asked to stop (preempted); up to " + seconds_text(policy_.preempt_grace) +
                       " for run_one to return";
    progress_.message(note + " (signal again to kill it at once)");
    if (watch.link != nullptr) watch.link->push_log_line("gridexp-worker: " + note);
  }
  run.end = TrialEnd::kInterrupted;
  if (session_.has_exited()) {
    run.error = "the executor " + session_.exit_description() + " after the stop";
    session_.forget_dead_executor();
    return true;
  }
  const bool forced = policy_.kill_now != nullptr && policy_.kill_now->load();
  if (forced || now_() - watch.preempt_sent_at > policy_.preempt_grace) {
    session_.kill_now();
    run.error = forced ? "its executor was killed at a second signal"
                       : "run_one did not return within " + seconds_text(policy_.preempt_grace) +
                             " (--grace_seconds), so its executor was killed";
    progress_.message("trial " + watch.trial_id + ": " + run.error);
    if (watch.link != nullptr) watch.link->push_log_line("gridexp-worker: " + run.error);
    return true;
  }
  run.end = TrialEnd::kFinished;
  return false;
}

bool TrialRunner::check_executor(Watch& watch, TrialRun& run) {
  if (interrupted_) return preempt(watch, run);
  if (session_.has_exited()) {
    run.succeeded = false;
    run.error = "the executor running experiment.py " + session_.exit_description();
    if (!watch.fatal_reason.empty()) run.error += ": " + watch.fatal_reason;
    // A signal nobody here sent came from outside the trial's code (a fatal event first means
    // the executor knew why it ended: that is the trial's failure).
    if (session_.exit_signal() && watch.fatal_reason.empty()) run.end = TrialEnd::kExecutorLost;
    session_.forget_dead_executor();
    return true;
  }
  TrialLink* link = watch.link;
  bool lease_lost = link && link->lease_lost();
  bool cancelled = link && link->stop_requested();
  if (!watch.stop_sent && (lease_lost || cancelled)) {
    // A dead executor is seen by the next wait; the kill after the grace covers it.
    ignore_outcome(session_.stop(watch.trial_id,
                                 lease_lost ? StopReason::kLeaseLost : StopReason::kCancelled));
    watch.stop_sent = true;
    watch.stop_sent_at = now_();
    if (cancelled) {
      progress_.message("trial " + watch.trial_id + " was cancelled; asking it to stop");
    }
  }
  if (watch.stop_sent && now_() - watch.stop_sent_at > policy_.stop_grace) {
    kill_for_stop(watch, run);
    return true;
  }
  return false;
}

void TrialRunner::kill_for_stop(Watch& watch, TrialRun& run) {
  session_.kill_now();
  if (watch.link->lease_lost()) {
    run.end = TrialEnd::kLeaseLost;
    return;
  }
  run.succeeded = false;
  run.error =
      "cancelled; run_one did not stop within " +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(policy_.stop_grace).count()) +
      " s (it can poll gridexp.should_stop()), so its executor was killed";
}

}  // namespace gridexp
