// ClaimLoop: claims trials from the server and hands each to a WorkerSlot until the grid is
// finished, --max_trials trials ran, a trial failed under --raise_on_failure, or the worker is
// interrupted; waits (polling) while the trials left run on other workers. Every claim carries
// an id, sent again with its retries, so a claim whose answer was lost gets its lease again
// instead of a second one (docs/protocol.md, "Claim"); a completion claims the next trial
// with the next id, and when its answer does not bring that claim's answer, the loop sends
// the claim itself, with the same id.
//
// run() returns the worker's exit status (worker_exit.h) and prints the reason for a
// non-zero one last. A loop is for one thread; with several executor slots (gpu_slots.h) each
// slot runs its own loop on its own thread, and the loops share one ClaimQuota. A slot that
// shares its GPU (a GpuSeat) takes a turn at the GPU (gpu_share.h) before it starts its
// executor and claims, and gives it back once the claim brought no trial or the trial is
// delivered (handed over, below: once its run has ended), with the trial's peak GPU memory; a trial
// claimed with a completion is given back when the next turn does not come at once (its lease would
// run out unheard).
//
// A slot with a BackgroundDelivery hands over a finished trial with a model file (worker_slot.h)
// when the loop goes on: its turn at the GPU ends with its run, the loop claims the next trial
// (a plain claim, with the claim id the completion would have carried), and once that claim is
// answered (or the loop ends, or must wait for its GPU turn) starts the trial's upload and
// completion in the background, then runs the next trial. A handed-over trial that delivery
// fails (its model over --max-upload-mb) ends the run under --raise_on_failure as soon as the
// delivery ends (no slot starts another trial) and this loop ends with it at its next step.
// Whatever ends the loop, run() returns only once the delivery in flight has ended.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/background_delivery.h"
#include "worker/gpu_share.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"
#include "worker/worker_slot.h"

namespace gridexp {

// What the claim loops of one worker share: --max_trials, counted over all of them, and the
// word that the run is ending (a trial failed under --raise_on_failure, a slot cannot start its
// executor): no loop starts another trial then. Safe from any thread.
class ClaimQuota {
 public:
  explicit ClaimQuota(std::optional<std::int64_t> max_trials = std::nullopt);

  // Counts one more trial to run; false when --max_trials are taken or the run is ending.
  bool take();
  // Undoes a take() whose trial did not run.
  void give_back();
  // Whether a take() now could succeed (to claim the next trial with a completion).
  bool may_take() const;
  void end_run();
  bool run_ended() const;
  std::int64_t taken() const;

 private:
  mutable std::mutex mutex_;
  std::optional<std::int64_t> max_trials_;
  std::int64_t taken_ = 0;
  bool run_ended_ = false;
};

struct ClaimSettings {
  std::string worker_id;
  std::shared_ptr<ClaimQuota> quota;  // null: a quota of the loop's own, without a limit
  std::chrono::milliseconds poll_interval{2000};
  bool raise_on_failure = true;
  // Waits `delay`, returning false when the worker was interrupted meanwhile.
  std::function<bool(std::chrono::milliseconds delay)> keep_waiting;
  // A fresh claim id.
  std::function<std::string()> new_claim_id;
  GpuSeat gpu_seat;  // empty: the slot has its GPU (or the CPU) to itself
};

class ClaimLoop {
 public:
  ClaimLoop(ClaimSettings settings, ServerApi& server, WorkerSlot& slot, const RetryPolicy& retry,
            Progress& progress, const std::atomic<bool>& interrupted);

  int run();

 private:
  int claim_until_done();
  // Waits for the slot's turn at its GPU; an exit status when the loop ends meanwhile.
  std::optional<int> wait_for_gpu_turn();
  void end_gpu_turn(std::optional<std::int64_t> peak_bytes);
  // The next claim answer: the one a completion brought, or a claim sent now.
  Result<nlohmann::json> next_answer();
  // Gives back a trial a completion claimed but the worker will not run.
  void give_back_next_claim();
  int exit_interrupted();
  // Ends the loop with `exit_status` and `reason`, and the other slots' loops with it.
  int end_run(int exit_status, const std::string& reason);
  // An exit status when the loop should end before claiming (again).
  std::optional<int> should_stop();
  // An exit status when the answer ends the loop; nullopt to go on.
  std::optional<int> on_answer(const nlohmann::json& answer);
  std::optional<int> after_trial(const std::string& trial_id, SlotResult& result);
  // Starts the upload of the trial handed over last, if there is one.
  void start_upload();
  // An exit status when a handed-over trial that has been delivered ends the run.
  std::optional<int> after_upload();
  // Waits for the delivery in flight; `exit_status`, or the failure that delivery ends it with.
  int finish_uploads(int exit_status);
  // Ends the run for a failed trial under --raise_on_failure.
  int end_run_failed(const std::string& trial_id, const std::string& error);

  ClaimSettings settings_;
  ServerApi& server_;
  WorkerSlot& slot_;
  const RetryPolicy& retry_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  std::string claim_id_;
  std::string claim_path_;
  std::optional<nlohmann::json> next_claim_;
  std::optional<HandedOverTrial> handed_over_;  // its delivery not started yet
};

}  // namespace gridexp
