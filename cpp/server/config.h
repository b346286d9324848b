// config.yaml: the seed's experiment format, parsed into a validated ExperimentConfig.
//
// Top level: `experiment_name` (string, required), `hyperparameters` (mapping, required);
// every other key passes through untouched to the worker's init_dataset(config). A
// hyperparameter whose value is a YAML sequence is a grid axis of its items (each item may be
// a scalar, a list or a mapping); any other value is an axis of one value. YAML scalar types
// survive (int, float, bool, null, string; quoted scalars are always strings).
//
// YAML 1.2 is read, but a plain (unquoted) scalar that YAML 1.1 (PyYAML, the seed's reader)
// reads as a bool, number or date different from YAML 1.2's reading is refused: `yes`, `no`,
// `on`, `off`, `y`, `n` in any case YAML 1.1 knows, octal `010`, `1_000`, sexagesimal `1:30`,
// `0b1010`, `-0x1F`, `2024-01-01` (keys too, except `y` and `n`, which PyYAML reads as text).
//
// Work is bounded before anything is built: at most kMaxConfigBytes of text, one document,
// kMaxParsedNodes nodes, and aliases expanding to at most 1,000,000 values and 64 MiB of text.
//
// Every error names the file, line, column and key, formatted as
// "config.yaml:7:5: hyperparameters.lr: an axis needs at least one value", with control
// characters and invalid UTF-8 escaped (terminal_safe). Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

inline constexpr std::size_t kMaxConfigBytes = 16 << 20;
// yaml-cpp holds about 0.5-1.5 KB per node it builds: this bounds that to a few hundred MB.
inline constexpr std::size_t kMaxParsedNodes = 250'000;

struct Axis {
  std::string key;
  std::vector<nlohmann::json> values;  // never empty
};

struct ExperimentConfig {
  std::string source_name;         // the file name used in error messages
  std::string experiment_name;     // non-empty
  std::vector<Axis> axes;          // sorted by key (bytewise), keys unique
  nlohmann::json document;         // the whole top level as JSON, for init_dataset(config)
  int hyperparameters_line = 1;    // where `hyperparameters:` is, for errors about the grid
  int hyperparameters_column = 1;  // (1-based)
};

// How many points the grid has: the product of the axes' sizes (parse_config refuses a grid
// of 2^64 points or more).
std::uint64_t grid_point_count(const ExperimentConfig& config);

// An error naming the count, unless the grid has at most `max_points` points.
Status check_grid_size(const ExperimentConfig& config, std::uint64_t max_points);

// Everything but `hyperparameters` and `experiment_name`: what every trial of the grid shares
// (init_dataset(config) sees it), as canonical JSON text (keys sorted, no spaces).
std::string common_config_json(const ExperimentConfig& config);

// Parses YAML text. `source_name` is only used to label errors.
Result<ExperimentConfig> parse_config(std::string_view yaml_text, const std::string& source_name);

// Reads and parses a file; a missing or unreadable file is an error naming the path.
Result<ExperimentConfig> load_config(const std::filesystem::path& path);

}  // namespace gridexp
