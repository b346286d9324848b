// CheckpointUploads: the latest checkpoint of a slot's trial to the server, in the background.
#include "worker/checkpoint_uploads.h"

#include <cstdio>
#include <system_error>
#include <utility>

#include "common/sha256.h"

namespace gridexp {
namespace {

std::string mebibytes(std::uintmax_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

std::string describe_checkpoint(const std::optional<std::int64_t>& step) {
  return step ? "checkpoint at step " + std::to_string(*step) : std::string("checkpoint");
}

CheckpointUploads::CheckpointUploads(ServerApi& server, const RetryPolicy& retry,
                                     Progress& progress, FileSystem& fs)
    : server_(server), retry_(retry), progress_(progress), fs_(fs) {
  thread_ = std::thread([this] { upload_until_stopped(); });
}

CheckpointUploads::~CheckpointUploads() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  if (waiting_) ignore_outcome(fs_.remove(waiting_->file));
}

void CheckpointUploads::attach_log(const std::string& trial_id, TrialLink* link) {
  std::lock_guard lock(mutex_);
  logs_[trial_id] = link;
}

void CheckpointUploads::detach_log(const std::string& trial_id) {
  std::lock_guard lock(mutex_);
  logs_.erase(trial_id);
}

void CheckpointUploads::submit(PendingCheckpoint checkpoint) {
  std::optional<PendingCheckpoint> superseded;
  {
    std::lock_guard lock(mutex_);
    superseded = std::exchange(waiting_, std::move(checkpoint));
  }
  if (superseded) ignore_outcome(fs_.remove(superseded->file));
  changed_.notify_all();
}

void CheckpointUploads::drop(const std::string& trial_id) {
  std::optional<PendingCheckpoint> dropped;
  {
    std::lock_guard lock(mutex_);
    if (waiting_ && waiting_->trial_id == trial_id) dropped = std::exchange(waiting_, std::nullopt);
  }
  if (dropped) ignore_outcome(fs_.remove(dropped->file));
}

void CheckpointUploads::finish(const std::string& trial_id) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    return (!waiting_ || waiting_->trial_id != trial_id) && in_flight_ != trial_id;
  });
}

int CheckpointUploads::uploaded() const {
  std::lock_guard lock(mutex_);
  return uploaded_;
}

void CheckpointUploads::upload_until_stopped() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || waiting_.has_value(); });
    if (stopping_) return;
    PendingCheckpoint checkpoint = std::move(*waiting_);
    waiting_.reset();
    in_flight_ = checkpoint.trial_id;
    lock.unlock();
    upload(checkpoint);
    ignore_outcome(fs_.remove(checkpoint.file));
    lock.lock();
    in_flight_.reset();
    changed_.notify_all();
  }
}

void CheckpointUploads::upload(const PendingCheckpoint& checkpoint) {
  const std::string what = describe_checkpoint(checkpoint.step);
  std::error_code error;
  std::uintmax_t size = std::filesystem::file_size(checkpoint.file, error);
  Result<std::string> sha = sha256_file_hex(checkpoint.file);
  if (error || !sha) {
    tell(checkpoint.trial_id, what + " not kept: cannot read " + checkpoint.file.string());
    return;
  }
  HttpHeaders headers = {{"X-Gridexp-Lease-Token", checkpoint.lease_token},
                         {"X-Gridexp-Sha256", *sha},
                         {"X-Gridexp-Checkpoint-Kind", checkpoint_kind_name(checkpoint.kind)}};
  if (checkpoint.step) {
    headers.emplace_back("X-Gridexp-Checkpoint-Step", std::to_string(*checkpoint.step));
  }
  Result<nlohmann::json> answer = call_with_retry(
      [&] {
        return server_.put_file(trial_path(checkpoint.trial_id, "checkpoint"), checkpoint.file,
                                headers);
      },
      retry_);
  if (answer) {
    std::lock_guard lock(mutex_);
    ++uploaded_;
    return;
  }
  switch (answer.status().code()) {
    case Code::kConflict:  // the lease is gone: the trial is not ours to checkpoint any more
      progress_.message("trial " + checkpoint.trial_id + ": " + what +
                        " not kept: the lease is gone");
      return;
    case Code::kTooLarge:
      tell(checkpoint.trial_id,
           what + " not kept: " + mebibytes(size) + " is over the server's --max-upload-mb");
      return;
    case Code::kNotFound:  // a server from before checkpoints: said once
      if (!said_not_kept_.exchange(true)) {
        tell(checkpoint.trial_id, what + " not kept: the server does not keep checkpoints (" +
                                      answer.status().message() + ")");
      }
      return;
    default:
      tell(checkpoint.trial_id, what + " not kept: " + answer.status().message());
  }
}

void CheckpointUploads::tell(const std::string& trial_id, const std::string& line) {
  progress_.message("trial " + trial_id + ": " + line);
  std::lock_guard lock(mutex_);
  auto log = logs_.find(trial_id);
  if (log != logs_.end() && log->second != nullptr) {
    log->second->push_log_line("gridexp-worker: " + line);
  }
}

}  // namespace gridexp
