// Store: the durable state of the grid — trials, their leases and results, and workers.
//
// A trial moves pending -> running -> done | failed, or to cancelled by a user's cancel; a
// user's retry takes a failed or cancelled trial back to pending. A claim leases one pending trial
// of the active experiment to one worker with a fresh random lease token and an expiry; every later
// call for that trial (heartbeat, metrics, model, complete, fail, release) must present the
// token and is refused with Code::kConflict once the lease is gone. A running trial whose lease
// expires goes back to pending (or, after max_attempts claims, to failed with the reason), so
// every grid point completes exactly once.
//
// `attempts` counts claims; a release (the worker was interrupted) or a preemption (the worker
// was stopped by a signal and handed the trial back) gives the claim back without counting it.
// Cancelling a running trial sets its stop_requested flag (heartbeats answer it); whatever then
// ends the lease — complete, fail, release or expiry — ends the trial cancelled.
//
// A trial may hold one checkpoint (the latest a worker saved under its lease, from any
// attempt): a claim hands it to the next attempt, which records that it resumed from it. A
// trial that ends done drops it; failed and cancelled trials keep it for a retry.
//
// Implementations are safe to call from any number of threads at once; every method is
// atomic, and an OK return means the change is durable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "server/grid.h"

namespace gridexp {

enum class TrialState { kPending, kRunning, kDone, kFailed, kCancelled };

const char* to_string(TrialState state);
std::optional<TrialState> trial_state_from_string(std::string_view text);

struct StoreOptions {
  TimeMs lease_ms = 30'000;
  int max_attempts = 3;
};

struct WorkerInfo {
  std::string host;
  std::int64_t pid = 0;
  nlohmann::json devices = nlohmann::json::array();
  std::string version;
  // Where in a Slurm cluster it runs (docs/protocol.md, "Register"); none outside Slurm.
  std::optional<nlohmann::json> slurm;
};

struct WorkerRecord {
  std::string id;
  WorkerInfo info;
  TimeMs first_seen_ms = 0;
  TimeMs last_seen_ms = 0;
  std::optional<std::string> current_trial;
  std::int64_t trials_done = 0;
  std::int64_t trials_failed = 0;
};

// A trial's current checkpoint: what its file holds and where the server keeps it.
struct CheckpointInfo {
  std::optional<std::int64_t> step;  // the training step it was saved at, if the trial said
  std::string kind;                  // "object", "file" or "directory"
  std::int64_t size_bytes = 0;
  std::string sha256;     // 64 lowercase hex digits
  int attempt = 0;        // the attempt that saved it (set by record_checkpoint)
  TimeMs saved_ms = 0;    // when it was recorded (set by record_checkpoint)
  std::string file_name;  // in the experiment's checkpoints/ directory; chosen by the server
};

// What a worker gets from a successful claim.
struct Lease {
  std::string trial_id;
  std::string experiment;
  nlohmann::json hyperparameters;
  int attempt = 0;  // 1 for the first claim
  std::string lease_token;
  TimeMs lease_expires_ms = 0;
  std::optional<CheckpointInfo> checkpoint;  // the trial's checkpoint, to resume from
};

struct ClaimOutcome {
  std::optional<Lease> lease;  // empty when nothing is pending
  // The lease is the one this claim id already got (see claim_next_trial).
  bool resumed = false;
  std::int64_t pending = 0;  // left after this claim, in the active experiment's config
  std::int64_t running = 0;  // in the active experiment's config
  std::int64_t done = 0;
  std::int64_t failed = 0;
  std::int64_t cancelled = 0;
};

struct HeartbeatReply {
  TimeMs lease_expires_ms = 0;
  bool stop_requested = false;
  std::string worker_id;  // the lease holder
};

struct MetricPoint {
  std::optional<std::int64_t> step;
  TimeMs time_ms = 0;
  nlohmann::json values;  // an object of metric name -> value
};

struct ModelInfo {
  std::string sha256;
  std::int64_t size_bytes = 0;
};

struct TrialRecord {
  std::string id;
  std::string experiment;
  std::uint64_t grid_index = 0;
  bool in_config = true;  // false once the config no longer has this point
  TrialState state = TrialState::kPending;
  nlohmann::json hyperparameters;
  nlohmann::json results;  // null until done
  int attempts = 0;
  std::optional<std::string> worker_id;
  std::optional<TimeMs> started_ms;
  std::optional<TimeMs> finished_ms;
  std::optional<TimeMs> lease_expires_ms;
  std::optional<std::string> error;
  std::optional<std::string> traceback;
  std::optional<ModelInfo> model;
  bool stop_requested = false;
  // The peak GPU memory its completion reported (docs/protocol.md, "Complete"); empty when
  // the trial used no GPU, has not completed, or completed with a worker that did not say.
  std::optional<std::int64_t> peak_gpu_memory_bytes;
  std::optional<CheckpointInfo> checkpoint;
};

// What a worker measured of a trial it completes, besides its results.
struct TrialMeasurements {
  std::optional<std::int64_t> peak_gpu_memory_bytes;  // bytes, >= 0
};

// Trial counts by state: for the active experiment, only the trials in its current config
// (the ones a claim can still hand out or is running); for any other, all its trials.
struct ExperimentSummary {
  std::string name;
  bool active = false;  // the experiment of the current config
  std::int64_t pending = 0, running = 0, done = 0, failed = 0, cancelled = 0;
  std::int64_t total() const { return pending + running + done + failed + cancelled; }
  // Mean wall time of its trials that completed (claim to completion); empty before the first.
  std::optional<double> mean_done_ms;
  // When each of its trials running now was claimed (counted like the states above).
  std::vector<TimeMs> running_started_ms;
};

// One claim of a trial, for its attempt history.
struct AttemptRecord {
  int attempt = 0;
  std::string worker_id;
  TimeMs started_ms = 0;
  std::optional<TimeMs> ended_ms;
  std::string outcome;  // running, done, failed, released, expired, cancelled, lost, preempted
  std::optional<std::string> error;  // for preempted: the reason the worker gave
  std::optional<std::int64_t> peak_gpu_memory_bytes = std::nullopt;  // as its completion said
  bool resumed = false;  // it was handed a checkpoint when claimed
  std::optional<std::int64_t> resumed_from_step = std::nullopt;  // that checkpoint's step
};

// Which trials a user's retry or cancel applies to: the given ids of `experiment` (ids of
// other experiments are skipped), or, without ids, all of its trials in config.
struct TrialSelection {
  std::string experiment;
  std::optional<std::vector<std::string>> ids;
};

// What the store recorded of an experiment's config at its last sync_grid.
struct RecordedConfig {
  // Grid::common_config(); empty when last synced by a gridexp that did not record it.
  std::optional<std::string> common_config;
  std::int64_t config_generation = 0;  // see Grid
  // Its trials that are not pending (of every generation, in config or not): what a
  // changed config could make wrong.
  std::int64_t trials_not_pending = 0;
};

// How the store has served its calls (GET /metrics).
struct StoreStats {
  std::int64_t calls = 0;         // store methods called
  std::int64_t transactions = 0;  // transactions they ran in: fewer under load, where they share
  std::int64_t waiting = 0;       // calls queued for a transaction now
};

class Store {
 public:
  virtual ~Store() = default;

  // Makes `grid` the active experiment: inserts its new points as pending, keeps every
  // existing trial's state and results, and marks points no longer in it (of any experiment)
  // as out of config so they are never handed out again. Records grid.common_config() and
  // grid.config_generation() for the experiment; a generation other than the recorded one
  // first takes every trial of the experiment out of config (they are not its points).
  // `should_stop` is asked every few thousand points: when it says true the sync is
  // abandoned, nothing of it is written, and the result is Code::kUnavailable.
  virtual Status sync_grid(const Grid& grid, const std::function<bool()>& should_stop) = 0;
  Status sync_grid(const Grid& grid) {
    return sync_grid(grid, [] { return false; });
  }

  // What the last sync_grid of `experiment` recorded; empty for an experiment never synced.
  virtual Result<std::optional<RecordedConfig>> recorded_config(const std::string& experiment) = 0;

  virtual Result<WorkerRecord> register_worker(const WorkerInfo& info) = 0;
  virtual Result<std::vector<WorkerRecord>> list_workers() = 0;

  // Requeues expired leases first, then leases the lowest-index pending trial. `claim_id`
  // (empty: none) makes the claim safe to send again: a claim whose id is the worker's last
  // one that got a lease, while that lease is live, returns the same lease (same token and
  // attempt, `resumed`, expiry extended) instead of a second one, so a claim whose answer was
  // lost orphans no lease and spends no attempt.
  virtual Result<ClaimOutcome> claim_next_trial(const std::string& worker_id,
                                                const std::string& claim_id) = 0;
  Result<ClaimOutcome> claim_next_trial(const std::string& worker_id) {
    return claim_next_trial(worker_id, "");
  }

  virtual Result<HeartbeatReply> heartbeat(const std::string& trial_id,
                                           const std::string& lease_token) = 0;
  virtual Status add_metrics(const std::string& trial_id, const std::string& lease_token,
                             const std::vector<MetricPoint>& points) = 0;
  // Confirms the lease is still held (for a model upload about to be committed).
  virtual Status check_lease(const std::string& trial_id, const std::string& lease_token) = 0;
  virtual Status attach_model(const std::string& trial_id, const std::string& lease_token,
                              const ModelInfo& model) = 0;
  // Records the results and `measurements` (which replace a retried trial's earlier ones); a
  // trial that ends done drops its checkpoint (one cancelled meanwhile keeps it).
  virtual Status complete(const std::string& trial_id, const std::string& lease_token,
                          const nlohmann::json& results, const TrialMeasurements& measurements) = 0;
  Status complete(const std::string& trial_id, const std::string& lease_token,
                  const nlohmann::json& results) {
    return complete(trial_id, lease_token, results, TrialMeasurements{});
  }
  // complete(), then claim_next_trial() with `claim_id` for the worker that held the lease,
  // in one transaction: one round trip per trial for a worker that goes on. A refused
  // completion claims nothing; a claim that fails takes the completion back with it.
  virtual Result<ClaimOutcome> complete_and_claim(const std::string& trial_id,
                                                  const std::string& lease_token,
                                                  const nlohmann::json& results,
                                                  const TrialMeasurements& measurements,
                                                  const std::string& claim_id) = 0;
  Result<ClaimOutcome> complete_and_claim(const std::string& trial_id,
                                          const std::string& lease_token,
                                          const nlohmann::json& results,
                                          const std::string& claim_id) {
    return complete_and_claim(trial_id, lease_token, results, TrialMeasurements{}, claim_id);
  }
  // Records the failure and `measurements`, as complete() does.
  virtual Status fail(const std::string& trial_id, const std::string& lease_token,
                      const std::string& error, const std::string& traceback,
                      const TrialMeasurements& measurements) = 0;
  Status fail(const std::string& trial_id, const std::string& lease_token, const std::string& error,
              const std::string& traceback) {
    return fail(trial_id, lease_token, error, traceback, TrialMeasurements{});
  }
  virtual Status release(const std::string& trial_id, const std::string& lease_token) = 0;
  // The worker was stopped (a preemption: SIGTERM and the like) and hands the trial back at
  // once. Like release(), the claim is given back uncounted (the next claim gets the same
  // attempt number), but the attempt stays in the history as 'preempted' with `reason`
  // (empty: none). The trial is pending again, or cancelled if that was asked for. Returns
  // the new state.
  virtual Result<TrialState> preempt(const std::string& trial_id, const std::string& lease_token,
                                     const std::string& reason) = 0;
  // The worker lost the trial's executor mid-trial (it died by a signal: kill -9, the kernel's
  // OOM killer, a crash in native code). The attempt ends 'lost' with `reason` and counts, as
  // an expired lease does: the trial goes back to pending, or fails with the reason once it
  // has used max_attempts, or ends cancelled if that was asked for. Returns the new state.
  virtual Result<TrialState> requeue_lost(const std::string& trial_id,
                                          const std::string& lease_token,
                                          const std::string& reason) = 0;

  // Makes `checkpoint` (step, kind, size, sha256, file_name) the trial's current checkpoint,
  // under its live lease; the store sets its attempt and saved time. Returns the file name of
  // the checkpoint it replaced (empty: none, or the same file), which the caller deletes.
  virtual Result<std::optional<std::string>> record_checkpoint(
      const std::string& trial_id, const std::string& lease_token,
      const CheckpointInfo& checkpoint) = 0;
  // The checkpoint file names of every trial that has one: the files a server start keeps.
  virtual Result<std::vector<std::string>> checkpoint_files() = 0;

  // Returns expired running trials to pending (or failed after max_attempts); returns how
  // many it moved. Called by claims and periodically by the server.
  virtual Result<std::int64_t> requeue_expired() = 0;

  virtual Result<std::vector<ExperimentSummary>> list_experiments() = 0;
  virtual Result<std::vector<TrialRecord>> list_trials(const std::string& experiment) = 0;
  virtual Result<TrialRecord> get_trial(const std::string& trial_id) = 0;
  virtual Result<std::vector<MetricPoint>> list_metrics(const std::string& trial_id) = 0;
  virtual Result<std::vector<AttemptRecord>> list_attempts(const std::string& trial_id) = 0;

  // A user's actions. Retry: failed or cancelled -> pending, attempts reset, error, results
  // and model cleared (the attempt history keeps them; the checkpoint stays, to resume from).
  // Cancel: pending -> cancelled at once; running -> stop requested. Both skip trials the action
  // does not apply to and return the ids they changed: in grid order, or in the order given (each
  // id once).
  virtual Result<std::vector<std::string>> retry_trials(const TrialSelection& selection) = 0;
  virtual Result<std::vector<std::string>> cancel_trials(const TrialSelection& selection) = 0;

  virtual StoreStats stats() const = 0;
};

}  // namespace gridexp
