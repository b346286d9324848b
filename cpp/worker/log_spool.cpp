#include "worker/log_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace gridexp {

std::string format_log_cut_mark(std::uint64_t limit_bytes, std::uint64_t dropped_bytes) {
  std::string limit = limit_bytes % (1 << 20) == 0 ? std::to_string(limit_bytes >> 20) + " MiB"
                                                   : std::to_string(limit_bytes) + " bytes";
  return "[gridexp: log cut at " + limit + "; " + std::to_string(dropped_bytes) + " bytes dropped]";
}

LogSpool::LogSpool(const std::filesystem::path& directory, std::uint64_t limit_bytes)
    : limit_bytes_(limit_bytes),
      max_bytes_(limit_bytes > kLogCutMarkRoom ? limit_bytes - kLogCutMarkRoom : 0) {
  std::string name = (directory / "log-spool-XXXXXX").string();
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  // Unlinked at once: nothing is left behind, whatever ends the worker.
  if (fd_ >= 0) ::unlink(name.c_str());
}

LogSpool::~LogSpool() {
  if (fd_ >= 0) ::close(fd_);
}

void LogSpool::write_locked(std::string_view text) {
  while (!text.empty()) {
    ssize_t count = ::pwrite(fd_, text.data(), text.size(), static_cast<off_t>(written_));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) {
      // A full disk: what is not written counts as dropped, and nothing after it is kept.
      dropped_ += text.size();
      cutting_ = true;
      return;
    }
    written_ += static_cast<std::uint64_t>(count);
    text.remove_prefix(static_cast<std::size_t>(count));
  }
}

void LogSpool::append(std::string_view line) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  std::uint64_t size = line.size() + 1;
  if (fd_ < 0 || cutting_ || written_ + size > max_bytes_) {
    cutting_ = true;
    dropped_ += size;
    return;
  }
  std::string text;
  text.reserve(size);
  text.append(line);
  text += '\n';
  write_locked(text);
}

void LogSpool::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  if (dropped_ == 0 || fd_ < 0) return;
  write_locked(format_log_cut_mark(limit_bytes_, dropped_) + "\n");
}

std::string LogSpool::next_chunk(std::size_t max) {
  std::uint64_t end;
  {
    std::lock_guard lock(mutex_);
    end = written_;
  }
  std::size_t length = static_cast<std::size_t>(std::min<std::uint64_t>(end - sent_, max));
  std::string chunk(length, '\0');
  std::size_t read = 0;
  while (read < length) {
    ssize_t count =
        ::pread(fd_, chunk.data() + read, length - read, static_cast<off_t>(sent_ + read));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    read += static_cast<std::size_t>(count);
  }
  chunk.resize(read);
  if (sent_ + chunk.size() < end) {
    std::size_t last_newline = chunk.rfind('\n');
    if (last_newline != std::string::npos) chunk.resize(last_newline + 1);
  }
  return chunk;
}

void LogSpool::consume(std::size_t bytes) { sent_ += bytes; }

bool LogSpool::has_unsent() {
  std::lock_guard lock(mutex_);
  return sent_ < written_;
}

std::uint64_t LogSpool::dropped_bytes() {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace gridexp
