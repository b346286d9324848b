// TrialLogs: each trial's console output, kept in <experiment_dir>/logs/<trial_id>.log.
//
// Workers append chunks while a trial runs (every attempt adds to the same file); a log stops
// growing at `max_bytes_per_trial`, with one line saying so, so a chatty trial cannot fill the
// disk. Trial ids are validated before they become part of a path. Safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "common/file_system.h"
#include "common/status.h"

namespace gridexp {

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
