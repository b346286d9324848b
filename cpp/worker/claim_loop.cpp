// ClaimLoop: claim, run, deliver, again.
#include "worker/claim_loop.h"

#include <utility>

#include "common/url.h"
#include "worker/worker_exit.h"

namespace gridexp {

ClaimQuota::ClaimQuota(std::optional<std::int64_t> max_trials) : max_trials_(max_trials) {}

bool ClaimQuota::take() {
  std::lock_guard lock(mutex_);
  if (run_ended_ || (max_trials_ && taken_ >= *max_trials_)) return false;
  ++taken_;
  return true;
}

void ClaimQuota::give_back() {
  std::lock_guard lock(mutex_);
  if (taken_ > 0) --taken_;
}

bool ClaimQuota::may_take() const {
  std::lock_guard lock(mutex_);
  return !run_ended_ && (!max_trials_ || taken_ < *max_trials_);
}

void ClaimQuota::end_run() {
  std::lock_guard lock(mutex_);
  run_ended_ = true;
}

bool ClaimQuota::run_ended() const {
  std::lock_guard lock(mutex_);
  return run_ended_;
}

std::int64_t ClaimQuota::taken() const {
  std::lock_guard lock(mutex_);
  return taken_;
}

ClaimLoop::ClaimLoop(ClaimSettings settings, ServerApi& server, WorkerSlot& slot,
                     const RetryPolicy& retry, Progress& progress,
                     const std::atomic<bool>& interrupted)
    : settings_(std::move(settings)),
      server_(server),
      slot_(slot),
      retry_(retry),
      progress_(progress),
      interrupted_(interrupted),
      claim_id_(settings_.new_claim_id()),
      claim_path_("/api/v1/workers/" + encode_path_segment(settings_.worker_id) + "/claim") {
  if (!settings_.quota) settings_.quota = std::make_shared<ClaimQuota>();
}

void ClaimLoop::give_back_next_claim() {
  if (!next_claim_ || !(*next_claim_)["trial"].is_object()) return;
  const nlohmann::json& unstarted = (*next_claim_)["trial"];
  // A courtesy: a release that fails leaves the lease to expire on the server.
  ignore_outcome(server_.post_json(trial_path(unstarted["id"].get<std::string>(), "release"),
                                   {{"lease_token", unstarted["lease_token"]}}));
  next_claim_.reset();
}

int ClaimLoop::exit_interrupted() {
  give_back_next_claim();
  return fail_with(progress_, kWorkerExitInterrupted, "interrupted");
}

int ClaimLoop::end_run(int exit_status, const std::string& reason) {
  settings_.quota->end_run();
  give_back_next_claim();
  return fail_with(progress_, exit_status, reason);
}

Result<nlohmann::json> ClaimLoop::next_answer() {
  if (next_claim_) return *std::exchange(next_claim_, std::nullopt);
  const nlohmann::json claim = {{"claim_id", claim_id_}};
  return call_with_retry([&] { return server_.post_json(claim_path_, claim); }, retry_);
}

int ClaimLoop::end_run_failed(const std::string& trial_id, const std::string& error) {
  return end_run(kWorkerExitFailed,
                 "trial " + trial_id + " failed: " + error +
                     " (--raise_on_failure=True stops here; --raise_on_failure=False goes on)");
}

void ClaimLoop::start_upload() {
  if (!handed_over_) return;
  BackgroundDelivery::Done done;
  if (settings_.raise_on_failure) {
    // At once, so that no slot starts another trial; the loop says why at its next step.
    done = [quota = settings_.quota](const DeliveredTrial& delivered) {
      if (!delivered.succeeded && !delivered.cancelled) quota->end_run();
    };
  }
  slot_.uploads()->start(*std::exchange(handed_over_, std::nullopt), std::move(done));
}

std::optional<int> ClaimLoop::after_upload() {
  if (!slot_.uploads()) return std::nullopt;
  std::optional<DeliveredTrial> delivered = slot_.uploads()->take_delivered();
  if (!delivered || delivered->succeeded || delivered->cancelled || !settings_.raise_on_failure) {
    return std::nullopt;
  }
  return end_run_failed(delivered->trial_id, delivered->error);
}

int ClaimLoop::finish_uploads(int exit_status) {
  if (!slot_.uploads()) return exit_status;
  start_upload();
  slot_.uploads()->wait();
  std::optional<int> failed = after_upload();
  return failed && exit_status == kWorkerExitOk ? *failed : exit_status;
}

std::optional<int> ClaimLoop::should_stop() {
  if (interrupted_) return exit_interrupted();
  if (std::optional<int> exit_status = after_upload()) return exit_status;
  if (settings_.quota->run_ended()) {
    give_back_next_claim();
    return kWorkerExitOk;
  }
  if (!settings_.quota->may_take()) {
    give_back_next_claim();
    progress_.message("ran " + std::to_string(settings_.quota->taken()) +
                      " trials (--max_trials); stopping");
    return kWorkerExitOk;
  }
  if (Status started = slot_.ensure_executor(); !started) {
    if (interrupted_) return exit_interrupted();
    return end_run(kWorkerExitBadSetup, started.message());
  }
  return std::nullopt;
}

std::optional<int> ClaimLoop::wait_for_gpu_turn() {
  const GpuSeat& seat = settings_.gpu_seat;
  if (!seat || seat.share->try_start(seat.position)) return std::nullopt;
  give_back_next_claim();
  start_upload();  // not held back by the wait
  auto give_up = [this] { return interrupted_ || !settings_.quota->may_take(); };
  while (!seat.share->start(seat.position, give_up)) {
    if (std::optional<int> exit_status = should_stop()) return exit_status;
  }
  return std::nullopt;
}

void ClaimLoop::end_gpu_turn(std::optional<std::int64_t> peak_bytes) {
  if (settings_.gpu_seat) settings_.gpu_seat.share->finish(settings_.gpu_seat.position, peak_bytes);
}

int ClaimLoop::run() {
  int exit_status = claim_until_done();
  end_gpu_turn(std::nullopt);
  return finish_uploads(exit_status);
}

int ClaimLoop::claim_until_done() {
  while (true) {
    if (std::optional<int> exit_status = wait_for_gpu_turn()) return *exit_status;
    if (std::optional<int> exit_status = should_stop()) return *exit_status;
    Result<nlohmann::json> answer = next_answer();
    // Only now: the next trial is claimed before the model before it takes the line.
    start_upload();
    if (!answer) {
      if (interrupted_) return exit_interrupted();
      return fail_with(progress_, kWorkerExitFailed, answer.status().message());
    }
    claim_id_ = settings_.new_claim_id();
    if (std::optional<int> exit_status = on_answer(*answer)) return *exit_status;
  }
}

std::optional<int> ClaimLoop::on_answer(const nlohmann::json& answer) {
  std::int64_t pending = answer.value("pending", 0);
  std::int64_t running = answer.value("running", 0);
  if (answer.contains("done") && answer.contains("total")) {
    progress_.set_totals(answer["done"].get<std::int64_t>(), answer["total"].get<std::int64_t>());
  }
  const nlohmann::json& trial = answer["trial"];
  if (trial.is_null()) {
    end_gpu_turn(std::nullopt);
    if (pending == 0 && running == 0) {
      progress_.message("no trial is left to run: the grid is finished");
      return kWorkerExitOk;
    }
    progress_.idle("waiting: " + std::to_string(running) + " trials run on other workers");
    if (!settings_.keep_waiting(settings_.poll_interval)) {
      return fail_with(progress_, kWorkerExitInterrupted, "interrupted");
    }
    return std::nullopt;
  }
  if (!settings_.quota->take()) {
    next_claim_ = answer;  // given back by should_stop()
    return std::nullopt;
  }
  // A worker that goes on claims its next trial with the completion (one round trip), or,
  // when the slot hands the trial over to upload its model, with a claim of its own.
  bool goes_on = settings_.quota->may_take();
  SlotResult result = slot_.run_claimed(trial, goes_on ? claim_id_ : std::string());
  return after_trial(trial["id"].get<std::string>(), result);
}

std::optional<int> ClaimLoop::after_trial(const std::string& trial_id, SlotResult& result) {
  // The GPU is free once the run has ended, whether or not its model is uploaded yet.
  end_gpu_turn(result.peak_gpu_memory_bytes);
  handed_over_ = std::move(result.handed_over);
  if (result.end == TrialEnd::kNotStarted) {
    settings_.quota->give_back();
    return std::nullopt;
  }
  if (result.end == TrialEnd::kInterrupted) {
    return fail_with(progress_, kWorkerExitInterrupted,
                     "interrupted; trial " + trial_id + result.release_note);
  }
  if (result.end == TrialEnd::kLeaseLost) return std::nullopt;
  // A lost executor is not the trial's failure, until the server gives up on the trial.
  if (result.end == TrialEnd::kExecutorLost && !result.attempts_used_up) return std::nullopt;
  next_claim_ = result.next_claim;
  if (interrupted_) return exit_interrupted();
  // A cancelled trial that stopped by raising is what the user asked for, not a failure.
  if (!result.succeeded && !result.cancelled && settings_.raise_on_failure) {
    // The earlier trial's model may still be uploading: its "done" comes before the reason
    // the worker stops, which is the last line it prints.
    if (slot_.uploads()) slot_.uploads()->wait();
    return end_run_failed(trial_id, result.error);
  }
  return std::nullopt;
}

}  // namespace gridexp
