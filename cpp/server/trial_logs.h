// TrialLogs: each trial's console output, kept in <experiment_dir>/logs/<trial_id>.log.
//
// Workers append chunks while a trial runs (every attempt adds to the same file). A log keeps
// at most `max_bytes_per_trial` of output, so a chatty trial cannot fill the disk; past that
// the file ends with one mark line, "[gridexp: log cut at 64 MiB; M bytes dropped]", whose
// count grows with every chunk dropped after it (the line is rewritten in place). A chunk
// that ends with such a mark from the worker (it cuts an attempt's output at the same limit,
// worker/log_spool.h) adds the worker's count rather than the mark's own length.
// Trial ids are validated before they become part of a path. Safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/file_system.h"
#include "common/status.h"

namespace gridexp {

// The dropped-bytes count of a cut mark line (surrounding newlines allowed), or nothing when
// `line` is not one.
std::optional<std::uint64_t> parse_log_cut_mark(std::string_view line);

class TrialLogs {
 public:
  TrialLogs(std::filesystem::path logs_dir, std::uint64_t max_bytes_per_trial, FileSystem& fs);

  Status prepare();
  Status append(const std::string& trial_id, std::string_view text);
  // Requires is_valid_trial_id(trial_id).
  std::filesystem::path path_for(const std::string& trial_id) const;

 private:
  std::filesystem::path logs_dir_;
  std::uint64_t max_bytes_;
  FileSystem& fs_;
  std::mutex mutex_;
};

}  // namespace gridexp
