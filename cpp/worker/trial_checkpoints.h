// TrialCheckpoints: one slot's checkpoint files around the trials it runs (docs/executor.md,
// "Checkpoints").
//
// The slot's staging directory holds the trial's checkpoint_dir (<staging>/dir), the
// checkpoint it resumes from (<staging>/resume.ckpt, downloaded before `run`), the checkpoints
// gridexp.save_checkpoint writes there (temporary name, then rename, then the checkpoint event)
// and the zips of checkpoint_dir (<staging>/dir-<n>.zip). begin() downloads the checkpoint a
// claim announces with the trial's lease, checks its size and SHA-256, and for kind directory
// unpacks it into checkpoint_dir with the safe extraction of archive.h; a download that still
// fails after a few tries is said on the console and in the trial's log, and the trial runs
// from its start. Saved checkpoints go to the slot's CheckpointUploads (latest only, in the
// background); when the trial ends, keep() adds checkpoint_dir when its contents changed
// since begin() and waits for the trial's uploads, drop() forgets what still waits.
//
// Only files directly inside the staging directory, not its own, are ever taken from a
// checkpoint event (the path comes from the user's process). A TrialCheckpoints belongs to
// its slot's thread.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "common/executor_protocol.h"
#include "common/file_system.h"
#include "worker/checkpoint_uploads.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"

namespace gridexp {

class TrialCheckpoints {
 public:
  static constexpr int kDownloadTries = 3;

  // `staging_dir` (made absolute) is the slot's own. `uploads` null: nothing is uploaded (a
  // dry run); saved checkpoints are deleted.
  TrialCheckpoints(std::filesystem::path staging_dir, ServerApi& server, CheckpointUploads* uploads,
                   const RetryPolicy& retry, Progress& progress,
                   FileSystem& fs = default_file_system());
  ~TrialCheckpoints();

  // Empties the staging directory (what a run that crashed left there). Before any trial.
  Status prepare();

  // Before trial `claimed` ({"id", "lease_token", "checkpoint": {...} | null, ...}, or a
  // dry run's job without a lease) runs: sets `command`'s checkpoint_dir (empty) and the
  // checkpoint it resumes from, when the claim announces one and the download succeeded.
  void begin(const nlohmann::json& claimed, RunCommand& command, TrialLink* link);
  // The executor said trial `event.trial_id` saved a checkpoint.
  void saved(const CheckpointEvent& event);
  // The trial ended and keeps its checkpoint (it failed, was preempted, lost its executor).
  void keep();
  // The trial ended and needs no checkpoint any more (done, lease lost, not started).
  void drop();

  const std::filesystem::path& staging_dir() const { return staging_dir_; }
  std::filesystem::path checkpoint_dir() const { return staging_dir_ / "dir"; }

 private:
  // The file of the checkpoint announced by `announced`, or why there is none.
  Result<CheckpointRef> download(const nlohmann::json& announced);
  Result<CheckpointRef> download_once(const nlohmann::json& announced);
  void forget_trial();

  const std::filesystem::path staging_dir_;
  ServerApi& server_;
  CheckpointUploads* uploads_;
  const RetryPolicy& retry_;
  Progress& progress_;
  FileSystem& fs_;
  std::string trial_id_;  // "" between trials
  std::string lease_token_;
  std::string dir_fingerprint_;  // checkpoint_dir's contents as begin() handed them over
  int zips_ = 0;
};

}  // namespace gridexp
