// See checkpoint_files.h.
#include "server/checkpoint_files.h"

#include <cassert>
#include <set>
#include <system_error>

#include "common/random.h"

namespace gridexp {
namespace {

constexpr std::string_view kSuffix = ".ckpt";
constexpr std::size_t kShaPrefixDigits = 16;

bool is_lower_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !text.empty();
}

}  // namespace

CheckpointFiles::CheckpointFiles(std::filesystem::path checkpoints_dir, FileSystem& fs)
    : checkpoints_dir_(std::move(checkpoints_dir)),
      incoming_dir_(checkpoints_dir_ / ".incoming"),
      fs_(fs) {}

Status CheckpointFiles::prepare(const std::vector<std::string>& referenced) {
  if (Status status = fs_.create_directories(incoming_dir_); !status) return status;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(incoming_dir_, error)) {
    ignore_outcome(fs_.remove(entry.path()));
  }
  if (error) {
    return Status::io_error("cannot list " + incoming_dir_.string() + ": " + error.message());
  }
  std::set<std::string> kept(referenced.begin(), referenced.end());
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints_dir_, error)) {
    std::string name = entry.path().filename().string();
    if (entry.path() == incoming_dir_) continue;
    if (!kept.contains(name)) ignore_outcome(fs_.remove(entry.path()));
  }
  if (error) {
    return Status::io_error("cannot list " + checkpoints_dir_.string() + ": " + error.message());
  }
  std::lock_guard lock(mutex_);
  for (const std::string& name : referenced) {
    if (is_checkpoint_file_name(name)) file_of_trial_[name.substr(0, 16)] = name;
  }
  return Status::ok();
}

Result<std::unique_ptr<ModelUpload>> CheckpointFiles::begin_upload(const std::string& trial_id,
                                                                   std::uint64_t max_bytes) {
  if (!is_valid_trial_id(trial_id)) return Status::invalid_argument("malformed trial id");
  std::filesystem::path temporary = incoming_dir_ / random_hex(16);
  Result<std::unique_ptr<WritableFile>> file = fs_.create_exclusive(temporary, 0644);
  if (!file) return file.status();
  return std::make_unique<ModelUpload>(fs_, std::move(file).value(), temporary,
                                       std::filesystem::path(), max_bytes, "checkpoint");
}

std::string CheckpointFiles::file_name_for(const std::string& trial_id, const std::string& sha256) {
  assert(is_valid_trial_id(trial_id) && sha256.size() == 64);
  return trial_id + "-" + sha256.substr(0, kShaPrefixDigits) + std::string(kSuffix);
}

bool CheckpointFiles::is_checkpoint_file_name(std::string_view file_name) {
  if (file_name.size() != 16 + 1 + kShaPrefixDigits + kSuffix.size()) return false;
  return is_valid_trial_id(file_name.substr(0, 16)) && file_name[16] == '-' &&
         is_lower_hex(file_name.substr(17, kShaPrefixDigits)) && file_name.ends_with(kSuffix);
}

std::filesystem::path CheckpointFiles::path_of(const std::string& file_name) const {
  assert(is_checkpoint_file_name(file_name));
  return checkpoints_dir_ / file_name;
}

Status CheckpointFiles::commit(ModelUpload& upload, const std::string& trial_id,
                               const std::string& file_name, const RecordCheckpoint& record) {
  std::lock_guard lock(mutex_);
  if (Status renamed = upload.commit_to(path_of(file_name)); !renamed) return renamed;
  Result<std::optional<std::string>> replaced = record();
  if (!replaced) {
    // The same content as the recorded checkpoint was renamed over it: that file stays.
    auto current = file_of_trial_.find(trial_id);
    if (current == file_of_trial_.end() || current->second != file_name) {
      ignore_outcome(fs_.remove(path_of(file_name)));
    }
    return replaced.status();
  }
  file_of_trial_[trial_id] = file_name;
  if (*replaced && is_checkpoint_file_name(**replaced)) {
    ignore_outcome(fs_.remove(path_of(**replaced)));
  }
  return Status::ok();
}

void CheckpointFiles::forget_unreferenced(
    const std::string& trial_id,
    const std::function<bool(const std::string& file_name)>& still_referenced) {
  std::lock_guard lock(mutex_);
  auto current = file_of_trial_.find(trial_id);
  if (current == file_of_trial_.end() || still_referenced(current->second)) return;
  ignore_outcome(fs_.remove(path_of(current->second)));
  file_of_trial_.erase(current);
}

}  // namespace gridexp
