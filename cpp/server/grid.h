// Grid: the cartesian product of a config's axes, addressed by index without materializing it.
//
// Order is deterministic: axes sorted by key, the first axis varying slowest (like
// itertools.product). Each point's id is the first 16 hex digits of the SHA-256 of the
// canonical JSON {"experiment_name": ..., "hyperparameters": {...}} (keys sorted, no spaces),
// so the same point has the same id on every machine and every restart. An experiment whose
// config outside hyperparameters was changed into a new run of the grid
// (--config-changed=new-experiment) is at config generation g > 0, and its ids hash
// {"config_generation": g, "experiment_name": ..., "hyperparameters": {...}} instead: new ids,
// so no result of an earlier generation is ever handed out as one of this one.
// Immutable after construction; const methods are safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/config.h"

namespace gridexp {

class Grid {
 public:
  explicit Grid(const ExperimentConfig& config, std::int64_t config_generation = 0);

  const std::string& experiment_name() const { return experiment_name_; }
  std::int64_t config_generation() const { return config_generation_; }
  // common_config_json(config): what the Store records to notice a changed config.
  const std::string& common_config() const { return common_config_; }
  std::uint64_t size() const { return size_; }

  // Both require index < size().
  nlohmann::json hyperparameters_at(std::uint64_t index) const;
  std::string id_at(std::uint64_t index) const;
  // The canonical JSON text of hyperparameters_at(index), cheaper than dumping the json.
  std::string hyperparameters_json_at(std::uint64_t index) const;

  // The id of any point, for tests and tools: must agree with id_at.
  static std::string trial_id(const std::string& experiment_name,
                              const nlohmann::json& hyperparameters,
                              std::int64_t config_generation = 0);

 private:
  std::string experiment_name_;
  std::int64_t config_generation_ = 0;
  std::string common_config_;
  std::string id_prefix_;  // the canonical document's text up to the hyperparameters
  std::vector<std::string> keys_;
  std::vector<std::vector<nlohmann::json>> values_;
  std::vector<std::string> key_prefixes_;                   // canonical "\"key\":" per axis
  std::vector<std::vector<std::string>> canonical_values_;  // canonical dump per value
  std::uint64_t size_ = 0;
};

}  // namespace gridexp
