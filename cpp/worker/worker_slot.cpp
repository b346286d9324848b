// WorkerSlot: a claimed trial from the executor's start to its delivery.
#include "worker/worker_slot.h"

#include <utility>

#include "worker/outbox.h"

namespace gridexp {
namespace {

// The trial as the executor's run command carries it (docs/executor.md).
nlohmann::json job_of(const nlohmann::json& claimed) {
  return {{"id", claimed["id"]},
          {"attempt", claimed["attempt"]},
          {"experiment", claimed["experiment"]},
          {"hyperparameters", claimed["hyperparameters"]}};
}

}  // namespace

WorkerSlot::WorkerSlot(SlotSetup setup, ServerApi& server, Delivery& delivery,
                       const RetryPolicy& retry, Progress& progress,
                       const std::atomic<bool>& interrupted)
    : setup_(std::move(setup)),
      server_(server),
      delivery_(delivery),
      retry_(retry),
      progress_(progress),
      interrupted_(interrupted),
      fs_(default_file_system()),
      session_(setup_.spawn, setup_.launch, progress, setup_.stop_policy.event_poll),
      runner_(session_, progress, interrupted, setup_.stop_policy, setup_.now) {
  if (setup_.checkpoint_staging.empty()) return;
  checkpoints_.emplace(setup_.checkpoint_staging, server_, setup_.checkpoint_uploads, retry_,
                       progress_);
  if (Status prepared = checkpoints_->prepare(); !prepared) {
    progress_.message("warning: checkpoints are neither kept nor resumed: " + prepared.message());
    checkpoints_.reset();
  }
}

RunCommand WorkerSlot::prepare_run(const nlohmann::json& claimed, TrialLink* link) {
  RunCommand command = run_command(job_of(claimed));
  if (checkpoints_) checkpoints_->begin(claimed, command, link);
  return command;
}

TrialRun WorkerSlot::run_trial(const RunCommand& command, TrialLink* link) {
  if (!checkpoints_) return runner_.run(command, link, {});
  return runner_.run(command, link,
                     [this](const CheckpointEvent& event) { checkpoints_->saved(event); });
}

void WorkerSlot::settle_checkpoints(const TrialRun& run) {
  if (!checkpoints_) return;
  const bool keep = (run.end == TrialEnd::kFinished && !run.succeeded) ||
                    run.end == TrialEnd::kInterrupted || run.end == TrialEnd::kExecutorLost;
  keep ? checkpoints_->keep() : checkpoints_->drop();
}

std::string WorkerSlot::hand_back(const nlohmann::json& claimed) {
  std::string trial_id = claimed["id"].get<std::string>();
  std::string reason = setup_.preempt_reason ? setup_.preempt_reason() : "";
  nlohmann::json body = {{"lease_token", claimed["lease_token"]},
                         {"reason", reason.empty() ? "stopped" : reason}};
  Result<nlohmann::json> answer = server_.post_json(trial_path(trial_id, "preempt"), body);
  if (!answer && answer.status().code() == Code::kNotFound) {
    Status released = release(claimed, false);
    return released ? " released back to pending (the server has no /preempt)"
                    : " not released (" + released.message() +
                          "): it returns to pending when its lease expires";
  }
  if (!answer) {
    return " not handed back (" + answer.status().message() +
           "): it returns to pending when its lease expires";
  }
  std::string state = answer->is_object() ? answer->value("state", "pending") : "pending";
  return state == "cancelled" ? " preempted; it had been cancelled meanwhile"
                              : " preempted and released back to pending";
}

Status WorkerSlot::ensure_executor() {
  if (std::optional<std::string> cause = session_.take_exit_if_dead()) {
    progress_.message("the idle executor " + *cause + "; starting a new one");
  }
  if (session_.has_executor()) return Status::ok();
  return session_.start(setup_.start, interrupted_, setup_.stop_policy.interrupt_grace);
}

void WorkerSlot::end_left_behind(const std::string& trial_id) {
  if (!setup_.end_orphans) return;
  int ended = setup_.end_orphans(session_.pid());
  if (ended > 0) {
    progress_.message("ended " + std::to_string(ended) + " process" + (ended == 1 ? "" : "es") +
                      (trial_id.empty() ? " the executor" : " trial " + trial_id) +
                      " left running (started with setsid or a double fork)");
  }
}

Status WorkerSlot::release(const nlohmann::json& claimed, bool retry) {
  std::string path = trial_path(claimed["id"].get<std::string>(), "release");
  nlohmann::json body = {{"lease_token", claimed["lease_token"]}};
  auto post = [&] { return server_.post_json(path, body); };
  Result<nlohmann::json> released = retry ? call_with_retry(post, retry_) : post();
  return released ? Status::ok() : released.status();
}

SlotResult WorkerSlot::run_claimed(const nlohmann::json& claimed,
                                   const std::string& next_claim_id) {
  std::string trial_id = claimed["id"].get<std::string>();
  if (claimed.value("resumed", false)) {
    progress_.message("the answer to the claim of trial " + trial_id +
                      " was lost on the way; the server handed the same lease again");
  }
  std::unique_ptr<TrialLink> link = server_.start_heartbeat(
      trial_id, claimed["lease_token"].get<std::string>(), setup_.heartbeat_interval);
  RunCommand command = prepare_run(claimed, link.get());
  TrialRun run = run_trial(command, link.get());
  run = rerun_alone_after_out_of_memory(claimed, command, std::move(run), *link);
  SlotResult result;
  result.end = run.end;
  if (run.end != TrialEnd::kNotStarted) end_left_behind(trial_id);
  // While the lease is held (the link's heartbeats run on).
  settle_checkpoints(run);
  if (run.end == TrialEnd::kFinished) {
    if (setup_.uploads && run.model_path && !next_claim_id.empty()) {
      return hand_over(claimed, std::move(run), std::move(link));
    }
    return deliver(claimed, std::move(run), *link, next_claim_id);
  }
  link->flush_and_stop();
  if (run.end == TrialEnd::kNotStarted) {
    // A release that fails leaves the lease to expire on the server.
    ignore_outcome(release(claimed, true));
  } else if (run.end == TrialEnd::kInterrupted) {
    if (run.model_path) ignore_outcome(fs_.remove(*run.model_path));  // it stopped early
    result.release_note = hand_back(claimed);
  } else if (run.end == TrialEnd::kExecutorLost) {
    if (run.model_path) ignore_outcome(fs_.remove(*run.model_path));
    report_lost(claimed, run.error, result);
  } else if (run.end == TrialEnd::kLeaseLost) {
    if (run.model_path) ignore_outcome(fs_.remove(*run.model_path));  // not ours to upload
    progress_.message("lost the lease on trial " + trial_id +
                      " (it expired or was taken back); another worker completes it");
  }
  return result;
}

void WorkerSlot::report_lost(const nlohmann::json& claimed, const std::string& reason,
                             SlotResult& result) {
  std::string trial_id = claimed["id"].get<std::string>();
  result.error = reason;
  nlohmann::json body = {{"lease_token", claimed["lease_token"]}, {"reason", reason}};
  Result<nlohmann::json> answer = call_with_retry(
      [&] { return server_.post_json(trial_path(trial_id, "lost"), body); }, retry_);
  std::string state = answer && answer->is_object() ? answer->value("state", "") : "";
  result.attempts_used_up = state == "failed";
  result.cancelled = state == "cancelled";
  std::string what = state == "pending"        ? "it goes back to pending for another attempt"
                     : result.attempts_used_up ? "it has used --max-attempts and failed"
                     : result.cancelled        ? "it was cancelled meanwhile"
                     : answer                  ? "the server answered " + answer->dump()
                              : "the server did not take the report: " + answer.status().message();
  progress_.trial_finished(trial_id, false, reason + "; " + what);
}

TrialRun WorkerSlot::rerun_alone_after_out_of_memory(const nlohmann::json& claimed,
                                                     const RunCommand& command, TrialRun run,
                                                     TrialLink& link) {
  const GpuSeat& seat = setup_.gpu_seat;
  if (!seat || run.end != TrialEnd::kFinished || run.succeeded || !run.out_of_memory ||
      !seat.share->shared_during_turn(seat.position) || link.lease_lost() ||
      link.stop_requested()) {
    return run;
  }
  std::string trial_id = claimed["id"].get<std::string>();
  std::string note = "trial " + trial_id +
                     " ran out of GPU memory while other trials shared its GPU; it runs again "
                     "alone once they have finished (not counted as a failed attempt)";
  progress_.message(note);
  link.push_log_line("gridexp-worker: " + note);
  bool alone = seat.share->start_alone(
      seat.position, [&] { return interrupted_ || link.lease_lost() || link.stop_requested(); });
  if (!alone) {
    if (interrupted_) run.end = TrialEnd::kInterrupted;
    if (link.lease_lost()) run.end = TrialEnd::kLeaseLost;
    run.cancelled = link.stop_requested();
    return run;
  }
  link.push_log_line("gridexp-worker: trial " + trial_id + " runs again, alone on its GPU");
  end_left_behind(trial_id);
  TrialRun rerun = run_trial(command, &link);
  seat.share->end_alone(seat.position);
  return rerun;
}

FinishedTrial WorkerSlot::keep_outcome(const nlohmann::json& claimed, TrialRun& run) {
  FinishedTrial finished{claimed["id"].get<std::string>(),
                         claimed["lease_token"].get<std::string>(),
                         run.succeeded,
                         std::move(run.results),
                         run.error,
                         run.traceback,
                         run.model_path};
  finished.peak_gpu_memory_bytes = run.peak_gpu_memory_bytes;
  if (Status kept = delivery_.outbox().put(finished); !kept) {
    progress_.message("cannot keep the outcome on disk (" + kept.message() + "); sending it now");
  }
  return finished;
}

SlotResult WorkerSlot::hand_over(const nlohmann::json& claimed, TrialRun run,
                                 std::unique_ptr<TrialLink> link) {
  // One delivery in flight: this trial's model waits on disk for the one before.
  setup_.uploads->wait();
  SlotResult result;
  result.succeeded = run.succeeded;
  result.cancelled = run.cancelled;
  result.error = run.error;
  result.peak_gpu_memory_bytes = run.peak_gpu_memory_bytes;
  result.handed_over = HandedOverTrial{keep_outcome(claimed, run), std::move(link), run.cancelled};
  return result;
}

SlotResult WorkerSlot::deliver(const nlohmann::json& claimed, TrialRun run, TrialLink& link,
                               const std::string& next_claim_id) {
  std::string trial_id = claimed["id"].get<std::string>();
  FinishedTrial finished = keep_outcome(claimed, run);
  DeliveryReport report = delivery_.deliver(finished, &link, next_claim_id);
  SlotResult result;
  result.cancelled = run.cancelled || report.ended_cancelled;
  // Delivery may have failed the trial instead (results or model over the server's limits).
  result.error = finished.error;
  result.next_claim = std::move(report.next_claim);
  result.peak_gpu_memory_bytes = finished.peak_gpu_memory_bytes;
  std::string summary = finished.succeeded ? finished.results.dump() : finished.error;
  if (result.cancelled) summary = "cancelled by the user: " + summary;
  if (!report.status) summary += " (not delivered: " + report.status.message() + ")";
  result.succeeded = finished.succeeded;
  progress_.trial_finished(trial_id, finished.succeeded && report.status, summary);
  // Retried at the next trial and at exit; never beside a delivery in flight, which would be
  // sent twice.
  if (!report.status) {
    if (setup_.uploads) setup_.uploads->wait();
    ignore_outcome(delivery_.deliver_outbox());
  }
  return result;
}

Result<TrialRun> WorkerSlot::run_unleased(const nlohmann::json& job) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (Status started = ensure_executor(); !started) return started;
    TrialRun run = run_trial(prepare_run(job, nullptr), nullptr);
    if (checkpoints_) checkpoints_->drop();
    if (run.end == TrialEnd::kNotStarted) continue;
    end_left_behind(job["id"].get<std::string>());
    return run;
  }
  return Status::unavailable("the executor keeps dying");
}

}  // namespace gridexp
