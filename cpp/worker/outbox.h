// Outbox: finished trials kept on the worker's disk until the server acknowledges them.
//
// A trial's outcome is written (atomically, synced) before the worker sends it, and removed
// only after the server answered: a result survives a server outage and a worker restart,
// and is delivered when the server is back (or dropped when the server says the lease is
// gone, since then another worker owns the trial). Files: <dir>/<trial_id>.json.
// Not thread-safe: each executor slot has its own directory and Outbox, used by its thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "common/status.h"

namespace gridexp {

struct FinishedTrial {
  std::string trial_id;
  std::string lease_token;
  bool succeeded = false;
  nlohmann::json results;  // when succeeded
  std::string error;       // when failed
  std::string traceback;
  std::optional<std::filesystem::path> model_path;  // a saved model still to upload
  // Sent with a completion (docs/protocol.md); absent from files written before it existed.
  std::optional<std::int64_t> peak_gpu_memory_bytes = std::nullopt;

  nlohmann::json to_json() const;
  static Result<FinishedTrial> from_json(const nlohmann::json& value);
};

class Outbox {
 public:
  Outbox(std::filesystem::path directory, FileSystem& fs);

  Status prepare();
  Status put(const FinishedTrial& trial);
  // Every kept trial, oldest first; unreadable files are reported, not silently skipped.
  Result<std::vector<FinishedTrial>> pending() const;
  Status remove(const std::string& trial_id);

 private:
  std::filesystem::path path_for(const std::string& trial_id) const;

  std::filesystem::path directory_;
  FileSystem& fs_;
};

}  // namespace gridexp
