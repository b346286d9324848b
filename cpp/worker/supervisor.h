// Supervisor: gridexp-worker's setup and its parts put together. No Python runs here.
//
// Prepares the workdir (and its lock), registers with the server, fetches scripts.zip/data.zip
// when asked, delivers what earlier runs kept in their Outboxes, checks for experiment.py, then
// hands over to a ClaimLoop for each executor slot (gpu_slots.h). A slot is a WorkerSlot: an
// ExecutorSession (the executor of docs/executor.md, started and waited for before the slot's
// first claim, so a broken experiment.py burns no trial), a TrialRunner (stop and kill policy),
// and Delivery through the slot's Outbox over the slot's own ServerApi, with a second ServerApi
// and Delivery for its BackgroundDelivery (model uploads beside the next trial).
//
// With one slot (one GPU, or the CPU) everything runs on the main thread, as it always did.
// With several, each slot registers as a worker of its own (its GPU as its device) and runs
// on a thread of its own, with its own state directory (.gridexp-worker/slots/<n>: outbox,
// model files, log spool) and its executor started with CUDA_VISIBLE_DEVICES=<its GPU> and
// GRIDEXP_SLOT=<n>. Slots on one GPU take turns at it through a GpuShare (gpu_share.h): K at
// once with --trials-per-gpu K, as measured memory allows with auto. The slots share the workdir,
// the console (Progress), the stop flag and a ClaimQuota: a dead, hung or out-of-memory executor
// touches its own slot's trial only, while
// --max_trials counts over every slot, and a trial failed under --raise_on_failure (or a
// slot that cannot start its executor) lets the other slots finish their trials and stop.
// Processes the user's code leaves behind (orphans.h) are ended with each trial (with several
// slots: those started with that slot's GRIDEXP_SLOT) and, all of them, when the worker ends.
// A stop signal (SIGTERM, SIGINT, SIGUSR1: `interrupted`) preempts the running trials: each is
// asked to stop, gets --grace_seconds, its last checkpoint goes up and it is handed back
// (worker_slot.h); then the worker exits. Each slot keeps its checkpoint files in
// <slot state>/checkpoints and uploads them over a connection of its own. run() returns the process
// exit status (worker_exit.h; with several slots the gravest: interrupted, failed, bad setup, ok)
// and prints the reason for a non-zero one. One Supervisor per process; run() is called once, from
// the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "worker/background_delivery.h"
#include "worker/checkpoint_uploads.h"
#include "worker/claim_loop.h"
#include "worker/delivery.h"
#include "worker/executor_channel.h"
#include "worker/gpu_slots.h"
#include "worker/options.h"
#include "worker/outbox.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"
#include "worker/workdir_lock.h"
#include "worker/worker_exit.h"
#include "worker/worker_slot.h"

namespace gridexp {

struct SupervisorSetup {
  WorkerOptions options;
  std::string password;
  std::filesystem::path executor_path;
  std::vector<SlotPlan> slots;  // plan_slots(); at least one
  // The first stop signal's number once it came (0 before), for a preempted trial's reason.
  const std::atomic<int>* stop_signal = nullptr;
  // Set by a second stop signal: preempted trials' executors are killed at once.
  const std::atomic<bool>* kill_now = nullptr;
};

// The exit status of a worker whose slots ended with `slot_exit_statuses`: the gravest.
int combined_exit_status(const std::vector<int>& slot_exit_statuses);

class Supervisor {
 public:
  Supervisor(SupervisorSetup setup, Progress& progress, const std::atomic<bool>& interrupted);
  ~Supervisor();

  int run();

 private:
  // Waits `delay` in short steps; false once interrupted.
  bool keep_waiting(std::chrono::milliseconds delay);
  Status prepare_workdir();
  bool several_slots() const { return setup_.slots.size() > 1; }
  // Where the slot keeps its outbox, model files and log spool.
  std::filesystem::path slot_state_dir(const SlotPlan& slot) const;
  // Registers the slot as a worker; an exit status when that failed.
  std::optional<int> register_worker(const SlotPlan& slot);
  Status fetch_archives();
  // What this and earlier runs' slots kept in their outboxes.
  Status deliver_outboxes();
  // experiment.py in the workdir, or an error that says how to get it there.
  Status check_experiment_py() const;
  std::unique_ptr<WorkerSlot> make_slot(const SlotPlan& plan, ServerApi& server, Delivery& delivery,
                                        const GpuSeat& seat = {},
                                        BackgroundDelivery* uploads = nullptr,
                                        CheckpointUploads* checkpoint_uploads = nullptr);
  // Each slot's seat at its GPU's GpuShare (empty for a slot that does not share its GPU).
  std::vector<GpuSeat> gpu_seats() const;
  // One slot's claim loop, on the calling thread; its exit status.
  int run_slot(const SlotPlan& plan, const std::string& worker_id,
               const std::shared_ptr<ClaimQuota>& quota, const GpuSeat& seat);
  int run_dry();
  // One trial of a dry run; an exit status when the run ends there.
  std::optional<int> run_dry_trial(WorkerSlot& slot, const nlohmann::json& trial,
                                   const std::string& experiment);
  int run_claims();

  SupervisorSetup setup_;
  std::string base_url_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  FileSystem& fs_;
  std::filesystem::path state_dir_;
  std::filesystem::path model_dir_;
  std::unique_ptr<WorkdirLock> workdir_lock_;  // held from prepare_workdir() on
  HttpServerApi server_;
  RetryPolicy retry_;
  Outbox outbox_;
  Delivery delivery_;
  std::vector<std::string> worker_ids_;  // one per slot, in the order of setup_.slots
  nlohmann::json config_;
  std::chrono::milliseconds heartbeat_interval_{10'000};
};

}  // namespace gridexp
