#include "server/model_files.h"

#include <cassert>
#include <system_error>

#include "common/random.h"

namespace gridexp {

bool is_valid_trial_id(std::string_view text) {
  if (text.size() != 16) return false;
  for (char c : text) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

ModelUpload::ModelUpload(FileSystem& fs, std::unique_ptr<WritableFile> file,
                         std::filesystem::path temporary_path, std::filesystem::path final_path,
                         std::uint64_t max_bytes, std::string what)
    : fs_(fs),
      file_(std::move(file)),
      temporary_path_(std::move(temporary_path)),
      final_path_(std::move(final_path)),
      max_bytes_(max_bytes),
      what_(std::move(what)) {
  pending_.reserve(kWriteBatchBytes + (64 << 10));
}

ModelUpload::~ModelUpload() {
  ignore_outcome(stop_writer());  // an abandoned upload: its file is removed below
  file_.reset();
  if (!committed_) ignore_outcome(fs_.remove(temporary_path_));
}

Status ModelUpload::append(const char* data, std::size_t size) {
  if (!file_) return Status::internal("the " + what_ + " upload is already finished");
  if (size_bytes_ + size > max_bytes_) {
    return Status::too_large("the " + what_ + " is larger than --max-upload-mb (" +
                             std::to_string(max_bytes_ >> 20) + " MiB)");
  }
  size_bytes_ += size;
  // httplib hands the body over in 4 KiB pieces: batching them saves a write() per piece.
  pending_.insert(pending_.end(), data, data + size);
  if (pending_.size() < kWriteBatchBytes) return Status::ok();
  return hand_over_pending();
}

Status ModelUpload::hand_over_pending() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !writer_busy_; });
  if (!writer_status_) return writer_status_;
  in_flight_.swap(pending_);
  pending_.clear();
  if (!writer_.joinable()) {
    pending_.reserve(kWriteBatchBytes + (64 << 10));
    try {
      writer_ = std::thread([this] { write_batches(); });
    } catch (const std::system_error&) {
      // No thread to spare: this batch is written here (the next one tries again).
      lock.unlock();
      return hash_and_write(in_flight_);
    }
  }
  writer_busy_ = true;
  lock.unlock();
  changed_.notify_all();
  return Status::ok();
}

void ModelUpload::write_batches() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return writer_busy_ || writer_stopping_; });
    if (!writer_busy_) return;
    lock.unlock();
    // in_flight_ is the writer's alone while writer_busy_ is set.
    Status status = hash_and_write(in_flight_);
    lock.lock();
    if (writer_status_ && !status) writer_status_ = std::move(status);
    writer_busy_ = false;
    changed_.notify_all();
  }
}

Status ModelUpload::stop_writer() {
  if (!writer_.joinable()) return Status::ok();
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !writer_busy_; });
    writer_stopping_ = true;
  }
  changed_.notify_all();
  writer_.join();
  return writer_status_;
}

Status ModelUpload::hash_and_write(const std::vector<char>& batch) {
  hasher_.update(batch.data(), batch.size());
  Status written = file_->append(batch.data(), batch.size());
  // The disk works while the rest arrives, rather than all in finish()'s fsync.
  if (written) file_->start_writeback();
  return written;
}

Status ModelUpload::finish(const std::string& expected_sha256) {
  if (!file_) return Status::internal("the " + what_ + " upload is already finished");
  // The writer thread has hashed and written every batch before pending_: the rest goes last.
  Status status = stop_writer();
  if (status) status = hash_and_write(pending_);
  pending_.clear();
  if (status) status = file_->sync_and_close();
  file_.reset();
  if (!status) return status;
  sha256_ = hasher_.finish_hex();
  if (sha256_ != expected_sha256) {
    return Status::invalid_argument("the " + what_ + "'s SHA-256 is " + sha256_ +
                                    " but the worker sent " + expected_sha256 +
                                    ": the upload was corrupted");
  }
  verified_ = true;
  return Status::ok();
}

Status ModelUpload::commit_to(const std::filesystem::path& final_path) {
  if (!verified_ || committed_) {
    return Status::internal("an upload is committed once, after finish() succeeded");
  }
  Status status = fs_.rename_durably(temporary_path_, final_path);
  if (status) committed_ = true;
  return status;
}

ModelFiles::ModelFiles(std::filesystem::path models_dir, FileSystem& fs)
    : models_dir_(std::move(models_dir)), incoming_dir_(models_dir_ / ".incoming"), fs_(fs) {}

Status ModelFiles::prepare() {
  if (Status status = fs_.create_directories(incoming_dir_); !status) return status;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(incoming_dir_, error)) {
    if (entry.path().extension() == ".part") ignore_outcome(fs_.remove(entry.path()));
  }
  if (error)
    return Status::io_error("cannot list " + incoming_dir_.string() + ": " + error.message());
  return Status::ok();
}

Result<std::unique_ptr<ModelUpload>> ModelFiles::begin_upload(const std::string& trial_id,
                                                              std::uint64_t max_bytes) {
  if (!is_valid_trial_id(trial_id)) return Status::invalid_argument("malformed trial id");
  std::filesystem::path temporary = incoming_dir_ / (trial_id + "." + random_hex(8) + ".part");
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(temporary, 0644);
  if (!file) return file.status();
  return std::make_unique<ModelUpload>(fs_, std::move(file).value(), temporary, path_for(trial_id),
                                       max_bytes);
}

std::filesystem::path ModelFiles::path_for(const std::string& trial_id) const {
  assert(is_valid_trial_id(trial_id));
  return models_dir_ / (trial_id + ".pt");
}

}  // namespace gridexp
