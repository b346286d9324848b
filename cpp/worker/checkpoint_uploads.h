// CheckpointUploads: one slot's checkpoint uploads (PUT /api/v1/trials/{id}/checkpoint,
// docs/protocol.md) on a thread of their own, so that gridexp.save_checkpoint never waits on
// the network.
//
// At most one upload is in flight, and only the latest checkpoint submitted meanwhile waits:
// a newer one supersedes it and its file is deleted (the server keeps only the latest anyway).
// Every file handed over is deleted once uploaded, superseded, dropped or refused. Refusals
// are said on the console and in the trial's log when one is attached: 413 as "checkpoint at
// step N not kept: X MiB is over the server's --max-upload-mb"; 409 (the lease is gone) drops
// the checkpoint quietly; 404 (a server without checkpoints) is said once. Transient failures are
// retried as the RetryPolicy says.
//
// Thread-safety: every method is safe from any thread (the slot's, in practice); the uploads
// run on the object's thread, over a ServerApi that nobody else uses meanwhile.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/executor_protocol.h"
#include "common/file_system.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"

namespace gridexp {

// A complete checkpoint file of a leased trial, waiting for its upload.
struct PendingCheckpoint {
  std::string trial_id;
  std::string lease_token;
  std::filesystem::path file;  // owned from submit() on: deleted once it is dealt with
  CheckpointKind kind = CheckpointKind::kObject;
  std::optional<std::int64_t> step;
};

class CheckpointUploads {
 public:
  CheckpointUploads(ServerApi& server, const RetryPolicy& retry, Progress& progress,
                    FileSystem& fs = default_file_system());
  // Lets the upload in flight end, deletes the file still waiting.
  ~CheckpointUploads();
  CheckpointUploads(const CheckpointUploads&) = delete;
  CheckpointUploads& operator=(const CheckpointUploads&) = delete;

  // Says what happens to `trial_id`'s uploads in `link` too, until detach_log(trial_id).
  void attach_log(const std::string& trial_id, TrialLink* link);
  void detach_log(const std::string& trial_id);

  // Queues `checkpoint`, superseding (and deleting) the one waiting, whatever its trial.
  void submit(PendingCheckpoint checkpoint);
  // Deletes `trial_id`'s checkpoint waiting, if any; an upload in flight goes on.
  void drop(const std::string& trial_id);
  // Waits until `trial_id` has no checkpoint waiting and none in flight.
  void finish(const std::string& trial_id);
  // How many checkpoints the server took so far.
  int uploaded() const;

 private:
  void upload_until_stopped();
  void upload(const PendingCheckpoint& checkpoint);
  // Says `line` on the console and in the trial's attached log.
  void tell(const std::string& trial_id, const std::string& line);

  ServerApi& server_;
  const RetryPolicy& retry_;
  Progress& progress_;
  FileSystem& fs_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<PendingCheckpoint> waiting_;  // guarded by mutex_
  std::optional<std::string> in_flight_;      // the trial whose upload runs; guarded by mutex_
  std::map<std::string, TrialLink*> logs_;    // guarded by mutex_
  int uploaded_ = 0;                          // guarded by mutex_
  bool stopping_ = false;                     // guarded by mutex_
  std::atomic<bool> said_not_kept_{false};    // a 404 was said already
  std::thread thread_;
};

// "checkpoint at step 12" / "checkpoint" (no step).
std::string describe_checkpoint(const std::optional<std::int64_t>& step);

}  // namespace gridexp
