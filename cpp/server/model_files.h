// ModelFiles: trial model files under <experiment_dir>/models/<trial_id>.pt.
//
// An upload streams into models/.incoming/<trial_id>.<random>.part while its SHA-256 and size
// are computed; finish() syncs it and checks the digest the worker declared; commit() renames
// it over the final name, so a reader only ever sees a whole, verified file. An upload that is
// abandoned (error, lost lease, dropped connection) removes its temporary file. Trial ids are
// validated as 16 lowercase hex digits before they become part of a path.
//
// An upload larger than one batch (1 MiB) hashes and writes on a thread of its own, one batch
// behind the request thread, so receiving the next batch overlaps hashing and writing the
// last one (the SHA-256 alone took ~40% of the request thread's time); a write error is then
// returned by the next append() or by finish().
// CheckpointFiles (checkpoint_files.h) streams checkpoints through the same ModelUpload, naming
// what it receives "checkpoint" in its errors and choosing the final name once the digest is
// known (commit_to).
// ModelFiles is safe from any thread; one ModelUpload belongs to one request thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/file_system.h"
#include "common/sha256.h"
#include "common/status.h"

namespace gridexp {

bool is_valid_trial_id(std::string_view text);

class ModelUpload {
 public:
  // `what` names the file in error messages ("model", "checkpoint").
  ModelUpload(FileSystem& fs, std::unique_ptr<WritableFile> file,
              std::filesystem::path temporary_path, std::filesystem::path final_path,
              std::uint64_t max_bytes, std::string what = "model");
  ~ModelUpload();
  ModelUpload(const ModelUpload&) = delete;
  ModelUpload& operator=(const ModelUpload&) = delete;

  // kTooLarge once more than max_bytes arrive; an earlier batch's write error.
  Status append(const char* data, std::size_t size);
  // Syncs and closes the file; kInvalidArgument when the digest is not `expected_sha256`.
  Status finish(const std::string& expected_sha256);
  // Moves the finished file into place (the final path given at construction, or
  // `final_path`), syncing its directory. Call at most once, after finish() succeeded.
  Status commit() { return commit_to(final_path_); }
  Status commit_to(const std::filesystem::path& final_path);

  const std::string& sha256() const { return sha256_; }
  std::uint64_t size_bytes() const { return size_bytes_; }

 private:
  static constexpr std::size_t kWriteBatchBytes = 1 << 20;
  // Waits until the writer thread is idle, then gives it pending_ (starting it the first
  // time); the writer's first error, if any.
  Status hand_over_pending();
  // Stops and joins the writer thread once it is idle; its first error, if any.
  Status stop_writer();
  void write_batches();  // the writer thread
  Status hash_and_write(const std::vector<char>& batch);

  FileSystem& fs_;
  std::unique_ptr<WritableFile> file_;
  std::vector<char> pending_;  // received, not yet hashed or written; request thread only

  // Shared with the writer thread, under mutex_.
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<char> in_flight_;  // the batch the writer hashes and writes
  bool writer_busy_ = false;
  bool writer_stopping_ = false;
  Status writer_status_;
  std::thread writer_;
  std::filesystem::path temporary_path_;
  std::filesystem::path final_path_;
  std::uint64_t max_bytes_;
  std::string what_;
  Sha256 hasher_;
  std::string sha256_;
  std::uint64_t size_bytes_ = 0;
  bool verified_ = false;
  bool committed_ = false;
};

class ModelFiles {
 public:
  ModelFiles(std::filesystem::path models_dir, FileSystem& fs);

  // Creates the directories and removes temporary files left by an earlier crash.
  Status prepare();
  Result<std::unique_ptr<ModelUpload>> begin_upload(const std::string& trial_id,
                                                    std::uint64_t max_bytes);
  // Requires is_valid_trial_id(trial_id).
  std::filesystem::path path_for(const std::string& trial_id) const;

 private:
  std::filesystem::path models_dir_;
  std::filesystem::path incoming_dir_;
  FileSystem& fs_;
};

}  // namespace gridexp
