#include "server/trial_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>

#include "server/model_files.h"

namespace gridexp {

TrialLogs::TrialLogs(std::filesystem::path logs_dir, std::uint64_t max_bytes_per_trial,
                     FileSystem& fs)
    : logs_dir_(std::move(logs_dir)), max_bytes_(max_bytes_per_trial), fs_(fs) {}

Status TrialLogs::prepare() { return fs_.create_directories(logs_dir_); }

std::filesystem::path TrialLogs::path_for(const std::string& trial_id) const {
  assert(is_valid_trial_id(trial_id));
  return logs_dir_ / (trial_id + ".log");
}

Status TrialLogs::append(const std::string& trial_id, std::string_view text) {
  if (!is_valid_trial_id(trial_id)) return Status::invalid_argument("malformed trial id");
  std::lock_guard lock(mutex_);
  std::filesystem::path path = path_for(trial_id);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::io_error("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat info = {};
  ::fstat(fd, &info);
  std::uint64_t size = static_cast<std::uint64_t>(info.st_size);
  std::string chunk;
  if (size < max_bytes_) {
    chunk.assign(text.substr(0, static_cast<std::size_t>(max_bytes_ - size)));
    if (chunk.size() < text.size()) {
      chunk += "\n[gridexp: this log is cut at " + std::to_string(max_bytes_ >> 20) + " MiB]\n";
    }
  }
  Status status;
  std::size_t written = 0;
  while (written < chunk.size()) {
    ssize_t count = ::write(fd, chunk.data() + written, chunk.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      status = Status::io_error("cannot write " + path.string() + ": " + std::strerror(errno));
      break;
    }
    written += static_cast<std::size_t>(count);
  }
  ::close(fd);
  return status;
}

}  // namespace gridexp
