// WorkerSlot: one place where trials run: an ExecutorSession, its TrialRunner, and what
// happens around a claimed trial (the lease kept alive by a TrialLink, delivery through the
// Outbox, releasing a trial the slot cannot run, ending what the trial left running).
//
// A worker with several slots (gpu_slots.h) runs each on its own thread with its own ServerApi
// and Delivery (docs/executor.md, "Executor slots"). A slot's methods are for one thread.
//
// A slot with a BackgroundDelivery (SlotSetup::uploads) hands a finished trial that has a model
// file to upload over to it when the worker goes on (a `next_claim_id`): the outcome is kept
// in the Outbox and the trial comes back as SlotResult::handed_over, for the claim loop to
// start its delivery once the next claim is answered, so that the upload overlaps the next
// trial. The slot first waits for the delivery in flight (one at a time), and waits for it too
// before it sends the Outbox's backlog (which would otherwise hold that trial as well).
//
// Checkpoints (SlotSetup::checkpoint_staging, TrialCheckpoints): before a claimed trial runs,
// the checkpoint its claim announces is downloaded; its saved checkpoints go up in the
// background (SlotSetup::checkpoint_uploads); a trial that succeeded drops what still waits,
// one that failed, was preempted or lost its executor first uploads its last checkpoint
// (checkpoint_dir included) while its lease holds.
//
// A trial preempted by a stop signal (TrialEnd::kInterrupted) is handed back with
// POST /api/v1/trials/{id}/preempt (reason: SlotSetup::preempt_reason), or with /release when
// the server has no such route (404).
//
// A slot that shares its GPU (a GpuSeat) runs a trial that failed with CUDA out-of-memory
// while another slot's trial ran on that GPU again, alone, in the same executor under the same
// lease and attempt (its heartbeat runs on): it waits until the other slots' trials on the GPU
// have finished, with none starting, then reruns it and lets them go on. An out-of-memory
// failure of a trial that ran alone is delivered as any failure; an interruption or a lost
// lease while waiting or rerunning ends the trial as it would have ended any other.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/executor_protocol.h"
#include "common/file_system.h"
#include "worker/background_delivery.h"
#include "worker/checkpoint_uploads.h"
#include "worker/delivery.h"
#include "worker/executor_session.h"
#include "worker/gpu_share.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/trial_checkpoints.h"
#include "worker/trial_runner.h"

namespace gridexp {

// Ends the processes the trials left running, all but `keep` (the live executor, or -1);
// returns how many it ended. The real one is end_orphans (orphans.h).
using OrphanReaper = std::function<int(pid_t keep)>;

struct SlotSetup {
  ExecutorSpawner spawn;
  ExecutorLaunch launch;
  StartCommand start;
  std::chrono::milliseconds heartbeat_interval{10'000};
  StopPolicy stop_policy;
  OrphanReaper end_orphans;
  SteadyNow now = std::chrono::steady_clock::now;
  GpuSeat gpu_seat;  // empty: the slot has its GPU (or the CPU) to itself
  // Null: a model is uploaded before the next trial starts (as with the last trial).
  BackgroundDelivery* uploads = nullptr;
  // The slot's own directory for checkpoint files (emptied when the slot is made); empty: no
  // checkpoints (neither downloaded nor kept).
  std::filesystem::path checkpoint_staging;
  // Null: saved checkpoints are deleted, not uploaded.
  CheckpointUploads* checkpoint_uploads = nullptr;
  // The reason a preempted trial's /preempt carries ("SIGTERM"); empty: "stopped".
  std::function<std::string()> preempt_reason;
};

// How a claimed trial ended, seen from the claim loop.
struct SlotResult {
  TrialEnd end = TrialEnd::kFinished;
  bool succeeded = false;  // ran and succeeded (whether or not the server has it yet)
  bool cancelled = false;
  std::string error;  // when it failed, or why its executor was lost
  // kExecutorLost: the server failed the trial instead of requeueing it (--max-attempts used).
  bool attempts_used_up = false;
  // When interrupted: whether the trial went back to pending, for the last message.
  std::string release_note;
  std::optional<nlohmann::json> next_claim;           // the claim answer a completion brought
  std::optional<std::int64_t> peak_gpu_memory_bytes;  // of a finished run, when measured
  // A finished trial whose model upload and completion are left to the BackgroundDelivery.
  std::optional<HandedOverTrial> handed_over;
};

class WorkerSlot {
 public:
  WorkerSlot(SlotSetup setup, ServerApi& server, Delivery& delivery, const RetryPolicy& retry,
             Progress& progress, const std::atomic<bool>& interrupted);

  // Replaces a dead idle executor and starts one when there is none (see
  // ExecutorSession::start for the errors).
  Status ensure_executor();

  // Runs a trial from a claim answer ({"id", "lease_token", "attempt", ...}) and delivers it
  // (or hands it over, above). A non-empty `next_claim_id` says the worker goes on: it claims
  // the next trial with the completion.
  SlotResult run_claimed(const nlohmann::json& claimed, const std::string& next_claim_id);

  // The slot's BackgroundDelivery (SlotSetup::uploads), or null.
  BackgroundDelivery* uploads() const { return setup_.uploads; }

  // Runs `job` without a server (--dry_run), restarting a dead executor once.
  Result<TrialRun> run_unleased(const nlohmann::json& job);

 private:
  void end_left_behind(const std::string& trial_id);
  // The run command for `claimed` (a claim answer, or a dry run's job), its checkpoint files
  // prepared (TrialCheckpoints::begin).
  RunCommand prepare_run(const nlohmann::json& claimed, TrialLink* link);
  TrialRun run_trial(const RunCommand& command, TrialLink* link);
  // The trial's checkpoints once its run ended: kept (uploaded) or dropped as `run` says.
  void settle_checkpoints(const TrialRun& run);
  // Hands a preempted trial back (/preempt, else /release); what became of it, for the last
  // message.
  std::string hand_back(const nlohmann::json& claimed);
  // `run` again, alone on the GPU, when it ran out of GPU memory while sharing it; else `run`.
  TrialRun rerun_alone_after_out_of_memory(const nlohmann::json& claimed, const RunCommand& command,
                                           TrialRun run, TrialLink& link);
  SlotResult deliver(const nlohmann::json& claimed, TrialRun run, TrialLink& link,
                     const std::string& next_claim_id);
  // The trial kept in the Outbox, for the BackgroundDelivery to upload and complete.
  SlotResult hand_over(const nlohmann::json& claimed, TrialRun run,
                       std::unique_ptr<TrialLink> link);
  // The outcome in the Outbox, before anything is sent: it survives a crash.
  FinishedTrial keep_outcome(const nlohmann::json& claimed, TrialRun& run);
  Status release(const nlohmann::json& claimed, bool retry);
  // Reports the trial's executor lost (docs/protocol.md, "Lost executor").
  void report_lost(const nlohmann::json& claimed, const std::string& reason, SlotResult& result);

  SlotSetup setup_;
  ServerApi& server_;
  Delivery& delivery_;
  const RetryPolicy& retry_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  FileSystem& fs_;
  ExecutorSession session_;
  TrialRunner runner_;
  std::optional<TrialCheckpoints> checkpoints_;  // with SlotSetup::checkpoint_staging
};

}  // namespace gridexp
