#include "server/trial_logs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/fd_io.h"
#include "server/model_files.h"

namespace gridexp {
namespace {

constexpr std::string_view kMarkStart = "[gridexp: log cut at ";
constexpr std::string_view kMarkCount = "; ";
constexpr std::string_view kMarkEnd = " bytes dropped]";
// A stored mark is a short line; anything longer past the limit is not ours to parse.
constexpr std::size_t kMaxMarkBytes = 256;

std::string format_mark(std::uint64_t limit_bytes, std::uint64_t dropped_bytes) {
  std::string limit = limit_bytes % (1 << 20) == 0 ? std::to_string(limit_bytes >> 20) + " MiB"
                                                   : std::to_string(limit_bytes) + " bytes";
  return "\n" + std::string(kMarkStart) + limit + std::string(kMarkCount) +
         std::to_string(dropped_bytes) + std::string(kMarkEnd) + "\n";
}

// Where the last line of `text` starts when that line is a cut mark.
std::optional<std::size_t> trailing_mark_start(std::string_view text) {
  if (!text.ends_with("]\n")) return std::nullopt;
  std::size_t start = text.rfind('\n', text.size() - 2);
  start = start == std::string_view::npos ? 0 : start + 1;
  if (!parse_log_cut_mark(text.substr(start))) return std::nullopt;
  return start;
}

Status write_log_bytes(int fd, std::string_view text, const std::filesystem::path& path) {
  if (Status written = write_all(fd, text); !written) {
    return Status::io_error("cannot write " + path.string() + ": " + written.message());
  }
  return Status::ok();
}

}  // namespace

std::optional<std::uint64_t> parse_log_cut_mark(std::string_view line) {
  while (!line.empty() && line.front() == '\n') line.remove_prefix(1);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.starts_with(kMarkStart) || !line.ends_with(kMarkEnd)) return std::nullopt;
  line.remove_suffix(kMarkEnd.size());
  std::size_t count_start = line.rfind(kMarkCount);
  if (count_start == std::string_view::npos || count_start < kMarkStart.size()) {
    return std::nullopt;
  }
  std::string_view digits = line.substr(count_start + kMarkCount.size());
  std::uint64_t dropped = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), dropped);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return dropped;
}

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
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Status::io_error("cannot open " + path.string() + ": " + std::strerror(errno));
  struct stat info = {};
  ::fstat(fd, &info);
  std::uint64_t size = static_cast<std::uint64_t>(info.st_size);
  Status status;
  if (size + text.size() <= max_bytes_) {
    status = write_log_bytes(fd, text, path);  // the common case: it fits, a worker's mark included
    ::close(fd);
    return status;
  }
  // The log is cut: count what does not fit, the worker's own count when it sent its mark.
  std::uint64_t dropped = 0;
  std::string_view content = text;
  if (std::optional<std::size_t> mark = trailing_mark_start(text)) {
    dropped += *parse_log_cut_mark(text.substr(*mark));
    content = text.substr(0, *mark);
  }
  if (size >= max_bytes_) {
    // Cut before: the earlier count is in the mark past the limit, rewritten with the new one.
    std::uint64_t tail_size = size - max_bytes_;
    if (tail_size <= kMaxMarkBytes) {
      std::string tail(tail_size, '\0');
      if (::pread(fd, tail.data(), tail.size(), static_cast<off_t>(max_bytes_)) ==
          static_cast<ssize_t>(tail.size())) {
        dropped += parse_log_cut_mark(tail).value_or(0);
      }
    }
    dropped += content.size();
    if (::ftruncate(fd, static_cast<off_t>(max_bytes_)) != 0) {
      status = Status::io_error("cannot cut " + path.string() + ": " + std::strerror(errno));
    }
  } else {
    std::size_t room = static_cast<std::size_t>(max_bytes_ - size);
    std::string_view kept = content.substr(0, room);
    dropped += content.size() - kept.size();
    status = write_log_bytes(fd, kept, path);
  }
  if (status) status = write_log_bytes(fd, format_mark(max_bytes_, dropped), path);
  ::close(fd);
  return status;
}

}  // namespace gridexp
