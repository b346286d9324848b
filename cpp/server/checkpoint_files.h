// CheckpointFiles: trials' checkpoint files under <experiment_dir>/checkpoints/ (docs/protocol.md,
// "Checkpoint upload").
//
// A checkpoint streams into checkpoints/.incoming/<random> (a ModelUpload: size limit, SHA-256,
// fsync) and is renamed to checkpoints/<trial_id>-<first 16 hex of its sha256>.ckpt, a name
// built here from a validated trial id and the digest the server computed: no part of a path
// ever comes from the network. The store records which file is each trial's current
// checkpoint; only after that is the previous one deleted, so a crash at any point leaves the
// previous checkpoint intact and recorded. prepare() (at server start) deletes whatever an
// interrupted upload left in .incoming and every checkpoint file the store does not reference.
//
// It also remembers which file each trial has on disk, so that a finished trial's file is found
// without asking the store (forget_unreferenced).
// Safe from any thread; one ModelUpload belongs to one request thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/file_system.h"
#include "common/status.h"
#include "server/model_files.h"

namespace gridexp {

class CheckpointFiles {
 public:
  CheckpointFiles(std::filesystem::path checkpoints_dir, FileSystem& fs);

  // Creates the directories, empties .incoming and deletes every file of the checkpoints
  // directory whose name is not in `referenced` (the store's checkpoint_files()).
  Status prepare(const std::vector<std::string>& referenced);

  // A new upload into .incoming; kInvalidArgument for a malformed trial id.
  Result<std::unique_ptr<ModelUpload>> begin_upload(const std::string& trial_id,
                                                    std::uint64_t max_bytes);

  // "<trial_id>-<first 16 hex of sha256>.ckpt". Requires is_valid_trial_id(trial_id) and a
  // 64-hex-digit digest.
  static std::string file_name_for(const std::string& trial_id, const std::string& sha256);
  // Whether `file_name` is a name file_name_for builds (for names read back from the store).
  static bool is_checkpoint_file_name(std::string_view file_name);
  // The file's path; requires is_checkpoint_file_name(file_name).
  std::filesystem::path path_of(const std::string& file_name) const;

  // Renames the finished `upload` to `file_name`, then runs `record` (the store update, under
  // the lease), which returns the file the trial's checkpoint replaced; then deletes that one.
  // A `record` that fails removes the new file again (unless it is the trial's recorded file
  // already: the same content sent twice). Commits of all trials are serialized.
  using RecordCheckpoint = std::function<Result<std::optional<std::string>>()>;
  Status commit(ModelUpload& upload, const std::string& trial_id, const std::string& file_name,
                const RecordCheckpoint& record);

  // After a trial's lease ended: if this server has a checkpoint file of `trial_id` on disk and
  // `still_referenced(file_name)` says the store no longer has it (the trial is done), deletes
  // it. Serialized with commit().
  void forget_unreferenced(
      const std::string& trial_id,
      const std::function<bool(const std::string& file_name)>& still_referenced);

 private:
  std::filesystem::path checkpoints_dir_;
  std::filesystem::path incoming_dir_;
  FileSystem& fs_;
  std::mutex mutex_;                                  // serializes commits and deletions
  std::map<std::string, std::string> file_of_trial_;  // under mutex_
};

}  // namespace gridexp
