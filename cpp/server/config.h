// config.yaml: the seed's experiment format, parsed into a validated ExperimentConfig.
//
// Top level: `experiment_name` (string, required), `hyperparameters` (mapping, required);
// every other key passes through untouched to the worker's init_dataset(config). A
// hyperparameter whose value is a YAML sequence is a grid axis of its items (each item may be
// a scalar, a list or a mapping); any other value is an axis of one value. YAML scalar types
// survive (int, float, bool, null, string; quoted scalars are always strings).
//
// Every error names the file, line, column and key, formatted as
// "config.yaml:7:5: hyperparameters.lr: an axis needs at least one value".
// Pure functions; safe to call from any thread.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

struct Axis {
  std::string key;
  std::vector<nlohmann::json> values;  // never empty
};

struct ExperimentConfig {
  std::string source_name;      // the file name used in error messages
  std::string experiment_name;  // non-empty
  std::vector<Axis> axes;       // sorted by key (bytewise), keys unique
  nlohmann::json document;      // the whole top level as JSON, for init_dataset(config)
};

// Parses YAML text. `source_name` is only used to label errors.
Result<ExperimentConfig> parse_config(std::string_view yaml_text, const std::string& source_name);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
Result<ExperimentConfig> load_config(const std::filesystem::path& path);

}  // namespace gridexp
