// TrialCheckpoints: the download before a trial, its saved checkpoints, checkpoint_dir.
#include "worker/trial_checkpoints.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "common/sha256.h"
#include "worker/archive.h"
#include "worker/directory_zip.h"

namespace gridexp {
namespace {

// The value of header `name` (any case), or "".
std::string header_value(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return value;
    }
  }
  return "";
}

// A staging name of the supervisor's own, which a checkpoint event may not hand over.
bool is_own_name(const std::string& name) {
  return name == "dir" || name == "resume.ckpt" || name == "resume.part" ||
         name.starts_with("dir-");
}

std::optional<std::int64_t> announced_step(const nlohmann::json& announced) {
  auto step = announced.find("step");
  if (step == announced.end() || !step->is_number_integer()) return std::nullopt;
  return step->get<std::int64_t>();
}

}  // namespace

TrialCheckpoints::TrialCheckpoints(std::filesystem::path staging_dir, ServerApi& server,
                                   CheckpointUploads* uploads, const RetryPolicy& retry,
                                   Progress& progress, FileSystem& fs)
    : staging_dir_(std::filesystem::absolute(staging_dir).lexically_normal()),
      server_(server),
      uploads_(uploads),
      retry_(retry),
      progress_(progress),
      fs_(fs) {}

TrialCheckpoints::~TrialCheckpoints() {
  if (!trial_id_.empty()) drop();
}

Status TrialCheckpoints::prepare() {
  std::error_code error;
  std::filesystem::remove_all(staging_dir_, error);
  if (error) {
    return Status::io_error("cannot empty " + staging_dir_.string() + ": " + error.message());
  }
  return fs_.create_directories(checkpoint_dir());
}

void TrialCheckpoints::begin(const nlohmann::json& claimed, RunCommand& command, TrialLink* link) {
  if (!trial_id_.empty()) drop();
  trial_id_ = claimed["id"].get<std::string>();
  lease_token_ = claimed.value("lease_token", "");
  std::error_code error;
  std::filesystem::remove_all(checkpoint_dir(), error);
  std::filesystem::remove(staging_dir_ / "resume.ckpt", error);
  ignore_outcome(fs_.create_directories(checkpoint_dir()));
  command.checkpoint_dir = checkpoint_dir().string();
  if (uploads_ != nullptr) uploads_->attach_log(trial_id_, link);
  auto announced = claimed.find("checkpoint");
  if (announced != claimed.end() && announced->is_object() && !lease_token_.empty()) {
    Result<CheckpointRef> checkpoint = download(*announced);
    if (checkpoint) {
      command.checkpoint = *checkpoint;
    } else {
      std::string line = "the " + describe_checkpoint(announced_step(*announced)) +
                         " of an earlier attempt could not be downloaded (" +
                         checkpoint.status().message() + "); the trial runs from its start";
      progress_.message("trial " + trial_id_ + ": " + line);
      if (link != nullptr) link->push_log_line("gridexp-worker: " + line);
    }
  }
  dir_fingerprint_ = directory_fingerprint(checkpoint_dir());
}

Result<CheckpointRef> TrialCheckpoints::download(const nlohmann::json& announced) {
  std::chrono::milliseconds delay = retry_.first_delay;
  Result<CheckpointRef> checkpoint = Status::unavailable("not tried");
  for (int attempt = 1; attempt <= kDownloadTries; ++attempt) {
    checkpoint = download_once(announced);
    Code code = checkpoint ? Code::kOk : checkpoint.status().code();
    // The lease gone, or no checkpoint after all: trying again cannot help.
    if (checkpoint || code == Code::kConflict || code == Code::kNotFound) break;
    if (attempt == kDownloadTries || !retry_.sleep || !retry_.sleep(delay)) break;
    delay = std::min(delay * 2, retry_.max_delay);
  }
  std::error_code error;
  std::filesystem::remove(staging_dir_ / "resume.part", error);
  return checkpoint;
}

Result<CheckpointRef> TrialCheckpoints::download_once(const nlohmann::json& announced) {
  std::optional<CheckpointKind> kind =
      checkpoint_kind_from_name(announced.value("kind", std::string()));
  std::string sha = announced.value("sha256", std::string());
  auto size = announced.find("size");
  if (!kind || sha.size() != 64 || size == announced.end() || !size->is_number_unsigned()) {
    return Status::invalid_argument("the claim describes it as " + announced.dump());
  }
  const std::filesystem::path part = staging_dir_ / "resume.part";
  Result<HttpHeaders> headers = server_.get_file(trial_path(trial_id_, "checkpoint"),
                                                 {{"X-Gridexp-Lease-Token", lease_token_}}, part);
  if (!headers) return headers.status();
  std::error_code error;
  std::uintmax_t got = std::filesystem::file_size(part, error);
  if (error || got != size->get<std::uintmax_t>()) {
    return Status::io_error("got " + std::to_string(got) + " bytes of " + size->dump());
  }
  Result<std::string> digest = sha256_file_hex(part);
  if (!digest) return digest.status();
  if (*digest != sha) return Status::io_error("its SHA-256 is " + *digest + ", not " + sha);
  std::string sent_sha = header_value(*headers, "X-Gridexp-Sha256");
  if (!sent_sha.empty() && sent_sha != sha) {
    return Status::io_error("the server sent another checkpoint than the claim announced");
  }
  CheckpointRef checkpoint;
  checkpoint.kind = *kind;
  checkpoint.step = announced_step(announced);
  if (*kind == CheckpointKind::kDirectory) {
    if (Status extracted = extract_zip(part, checkpoint_dir(), ExtractLimits{}, fs_); !extracted) {
      return extracted;
    }
    checkpoint.path = checkpoint_dir().string();
    return checkpoint;
  }
  const std::filesystem::path resume = staging_dir_ / "resume.ckpt";
  if (Status renamed = fs_.rename_durably(part, resume); !renamed) return renamed;
  checkpoint.path = resume.string();
  return checkpoint;
}

void TrialCheckpoints::saved(const CheckpointEvent& event) {
  std::filesystem::path file = std::filesystem::path(event.path).lexically_normal();
  std::error_code error;
  bool acceptable = file.parent_path() == staging_dir_ && !is_own_name(file.filename().string()) &&
                    std::filesystem::is_regular_file(std::filesystem::symlink_status(file, error));
  if (!acceptable) {
    progress_.message("trial " + event.trial_id + ": a checkpoint event names " + event.path +
                      ", which is no checkpoint file of this slot; ignored");
    return;
  }
  if (uploads_ == nullptr || event.trial_id != trial_id_ || lease_token_.empty()) {
    ignore_outcome(fs_.remove(file));
    return;
  }
  uploads_->submit({trial_id_, lease_token_, file, event.kind, event.step});
}

void TrialCheckpoints::keep() {
  if (trial_id_.empty()) return;
  if (uploads_ != nullptr && !lease_token_.empty() &&
      directory_fingerprint(checkpoint_dir()) != dir_fingerprint_) {
    std::filesystem::path zip = staging_dir_ / ("dir-" + std::to_string(++zips_) + ".zip");
    Status zipped = zip_directory(checkpoint_dir(), zip);
    if (zipped) {
      uploads_->submit({trial_id_, lease_token_, zip, CheckpointKind::kDirectory, std::nullopt});
    } else if (zipped.code() != Code::kInvalidArgument) {  // kInvalidArgument: it is empty
      progress_.message("trial " + trial_id_ + ": checkpoint_dir not kept: " + zipped.message());
    }
  }
  if (uploads_ != nullptr) uploads_->finish(trial_id_);
  forget_trial();
}

void TrialCheckpoints::drop() {
  if (trial_id_.empty()) return;
  if (uploads_ != nullptr) uploads_->drop(trial_id_);
  forget_trial();
}

void TrialCheckpoints::forget_trial() {
  if (uploads_ != nullptr) uploads_->detach_log(trial_id_);
  std::error_code error;
  std::filesystem::remove(staging_dir_ / "resume.ckpt", error);
  trial_id_.clear();
  lease_token_.clear();
  dir_fingerprint_.clear();
}

}  // namespace gridexp
