// LogSpool: one trial attempt's console output on its way to the server (POST …/log).
//
// The output is kept in an unlinked file in the worker's state directory, not in memory: the
// worker stays small however fast the trial prints and however long the server is away, and
// the sender reads it back in chunks. Whole lines are kept up to `limit_bytes` (the server's
// limit) less room for the mark (kLogCutMarkRoom); past that, lines are counted, not kept, and
// close() adds one mark line, "[gridexp: log cut at N MiB; M bytes dropped]", which the
// server adds to its own count when it cuts the log too (server/trial_logs.h). When the file
// cannot be made, every line is counted as dropped.
// append() is safe from any thread; close(), next_chunk() and consume() are for one sending
// thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

namespace gridexp {

// The server keeps this much of each trial's log (server/server.cpp, docs/protocol.md).
inline constexpr std::uint64_t kMaxLogBytesPerTrial = 64ull << 20;
// Room left under that limit for the cut mark, so that it is stored, not cut itself.
inline constexpr std::uint64_t kLogCutMarkRoom = 4096;

// "[gridexp: log cut at 64 MiB; 12 bytes dropped]" (no newline); a limit that is not whole
// MiB is given in bytes.
std::string format_log_cut_mark(std::uint64_t limit_bytes, std::uint64_t dropped_bytes);

class LogSpool {
 public:
  LogSpool(const std::filesystem::path& directory, std::uint64_t limit_bytes);
  ~LogSpool();
  LogSpool(const LogSpool&) = delete;
  LogSpool& operator=(const LogSpool&) = delete;

  // Adds `line` and a newline.
  void append(std::string_view line);
  // No more lines: adds the cut mark when something was dropped.
  void close();
  // Up to `max` bytes not yet consumed, ending after a newline when there is one in them;
  // empty when everything was consumed.
  std::string next_chunk(std::size_t max);
  void consume(std::size_t bytes);
  bool has_unsent();
  std::uint64_t dropped_bytes();

 private:
  void write_locked(std::string_view text);

  std::mutex mutex_;
  int fd_ = -1;
  std::uint64_t limit_bytes_;
  std::uint64_t max_bytes_;    // kept lines, at most
  std::uint64_t written_ = 0;  // bytes in the file
  std::uint64_t sent_ = 0;     // bytes consumed by the sender
  std::uint64_t dropped_ = 0;
  bool cutting_ = false;  // once a line was dropped, later ones are too: the log is a prefix
  bool closed_ = false;
};

}  // namespace gridexp
