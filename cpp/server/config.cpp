// config.cpp: config.yaml text -> ExperimentConfig: the experiment's own rules.
//
// The parser is four parts: config_document (bytes -> one yaml-cpp document, within the
// stream limits), config_values (nodes -> JSON, with yaml_core_schema's types and
// yaml11_refusals' refusals) and this file (experiment_name, hyperparameters and the grid's
// axes). Nothing leaves but Status values, each naming file:line:column and the key.
#include "server/config.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <utility>

#include "server/config_document.h"
#include "server/config_values.h"
#include "server/terminal_text.h"

namespace gridexp {
namespace {

using config_yaml::config_error;
using config_yaml::Converter;
using config_yaml::describe;
using config_yaml::item_path;
using config_yaml::kTopLevel;
using config_yaml::load_single_document;
using config_yaml::MappingEntry;
using config_yaml::read_config_file;
using config_yaml::value_mark;
using nlohmann::json;

constexpr std::string_view kExperimentNameKey = "experiment_name";
constexpr std::string_view kHyperparametersKey = "hyperparameters";

Result<std::string> parse_experiment_name(Converter& converter, const MappingEntry& entry) {
  Result<json> name = converter.to_json(entry.value, entry.path);
  if (!name) return name.status();
  if (name->is_null() || (name->is_string() && name->get_ref<const std::string&>().empty())) {
    return converter.error(value_mark(entry), entry.path,
                           "must not be empty; name the experiment, e.g. experiment_name: mnist1");
  }
  if (entry.value.IsSequence() || entry.value.IsMap()) {
    return converter.error(value_mark(entry), entry.path,
                           "must be text, not " + describe(entry.value));
  }
  if (!name->is_string()) {
    return converter.error(value_mark(entry), entry.path,
                           "must be text, not a " + std::string(name->type_name()) +
                               "; quote it to use it as a name: '" + entry.value.Scalar() + "'");
  }
  return name->get<std::string>();
}

// Two equal values on an axis would be two grid points with the same trial id.
Status check_values_distinct(const Converter& converter, const MappingEntry& entry,
                             const std::vector<json>& values) {
  std::unordered_map<std::string, std::size_t> first_index_of;
  for (std::size_t index = 0; index < values.size(); ++index) {
    std::string canonical = values[index].dump();
    auto [first, inserted] = first_index_of.emplace(canonical, index);
    if (!inserted) {
      return converter.error(entry.value[index].Mark(), item_path(entry.path, index),
                             "repeats the value of item " + std::to_string(first->second) + " (" +
                                 canonical + "); grid points must differ");
    }
  }
  return {};
}

// A sequence is an axis of its items; any other value is an axis of that one value.
Result<Axis> parse_axis(Converter& converter, const MappingEntry& entry) {
  Result<json> value = converter.to_json(entry.value, entry.path);
  if (!value) return value.status();
  if (!entry.value.IsSequence()) return Axis{entry.key, {std::move(*value)}};
  if (value->empty()) {
    return converter.error(entry.value.Mark(), entry.path, "an axis needs at least one value");
  }
  Axis axis{entry.key, value->get<std::vector<json>>()};
  if (Status status = check_values_distinct(converter, entry, axis.values); !status) return status;
  return axis;
}

// Fills config.axes (sorted by key) and returns the hyperparameters as written, lists intact.
Result<json> parse_hyperparameters(Converter& converter, const MappingEntry& entry,
                                   ExperimentConfig& config) {
  if (!entry.value.IsMap()) {
    return converter.error(value_mark(entry), entry.path,
                           "must be a mapping from each hyperparameter's name to its values, not " +
                               describe(entry.value));
  }
  Result<std::vector<MappingEntry>> entries = converter.entries_of(entry.value, entry.path);
  if (!entries) return entries.status();
  config.hyperparameters_line = entry.key_node.Mark().line + 1;
  config.hyperparameters_column = entry.key_node.Mark().column + 1;
  json document = json::object();
  std::uint64_t points = 1;
  for (const MappingEntry& axis_entry : *entries) {
    Result<Axis> axis = parse_axis(converter, axis_entry);
    if (!axis) return axis.status();
    document[axis->key] = axis_entry.value.IsSequence() ? json(axis->values) : axis->values.front();
    if (points > std::numeric_limits<std::uint64_t>::max() / axis->values.size()) {
      return converter.error(entry.key_node.Mark(), entry.path,
                             "the grid has more than 2^64 - 1 points");
    }
    points *= axis->values.size();
    config.axes.push_back(std::move(*axis));
  }
  std::sort(config.axes.begin(), config.axes.end(),
            [](const Axis& a, const Axis& b) { return a.key < b.key; });
  return document;
}

std::string with_thousands_separators(std::uint64_t number) {
  std::string digits = std::to_string(number);
  for (std::size_t at = digits.size(); at > 3; at -= 3) digits.insert(at - 3, ",");
  return digits;
}

}  // namespace

Result<ExperimentConfig> parse_config(std::string_view yaml_text, const std::string& source_name) {
  Result<YAML::Node> root = load_single_document(yaml_text, source_name);
  if (!root) return root.status();
  Converter converter(source_name);
  if (!root->IsMap()) {
    return converter.error(root->Mark(), kTopLevel,
                           "the config must be a mapping with experiment_name and "
                           "hyperparameters, not " +
                               describe(*root));
  }
  Result<std::vector<MappingEntry>> entries = converter.entries_of(*root, "");
  if (!entries) return entries.status();

  ExperimentConfig config;
  config.source_name = source_name;
  config.document = json::object();
  bool has_name = false;
  bool has_hyperparameters = false;
  for (const MappingEntry& entry : *entries) {
    if (entry.key == kExperimentNameKey) {
      Result<std::string> name = parse_experiment_name(converter, entry);
      if (!name) return name.status();
      config.experiment_name = *name;
      config.document[entry.key] = std::move(*name);
      has_name = true;
    } else if (entry.key == kHyperparametersKey) {
      Result<json> hyperparameters = parse_hyperparameters(converter, entry, config);
      if (!hyperparameters) return hyperparameters.status();
      config.document[entry.key] = std::move(*hyperparameters);
      has_hyperparameters = true;
    } else {
      Result<json> value = converter.to_json(entry.value, entry.path);
      if (!value) return value.status();
      config.document[entry.key] = std::move(*value);
    }
  }
  if (!has_name) {
    return converter.error(root->Mark(), kExperimentNameKey,
                           "missing; every config names its experiment, e.g. "
                           "experiment_name: mnist1");
  }
  if (!has_hyperparameters) {
    return converter.error(root->Mark(), kHyperparametersKey,
                           "missing; list the grid's axes under hyperparameters:");
  }
  return config;
}

Result<ExperimentConfig> load_config(const std::filesystem::path& path) {
  Result<std::string> text = read_config_file(path);
  if (!text) return Status(text.status().code(), terminal_safe(text.status().message()));
  return parse_config(*text, path.string());
}

std::uint64_t grid_point_count(const ExperimentConfig& config) {
  std::uint64_t points = 1;
  for (const Axis& axis : config.axes) points *= axis.values.size();
  return points;
}

Status check_grid_size(const ExperimentConfig& config, std::uint64_t max_points) {
  std::uint64_t points = grid_point_count(config);
  if (points <= max_points) return {};
  std::string sizes;
  for (const Axis& axis : config.axes) {
    sizes += (sizes.empty() ? "" : " x ") + std::to_string(axis.values.size());
  }
  YAML::Mark mark;
  mark.line = config.hyperparameters_line - 1;
  mark.column = config.hyperparameters_column - 1;
  return config_error(config.source_name, mark, kHyperparametersKey,
                      "the grid has " + with_thousands_separators(points) + " points (" + sizes +
                          "), more than --max-grid-points allows (" +
                          with_thousands_separators(max_points) +
                          "); make the grid smaller, or raise --max-grid-points if it will "
                          "start in time");
}

std::string common_config_json(const ExperimentConfig& config) {
  json common = config.document.is_object() ? config.document : json::object();
  common.erase(std::string(kHyperparametersKey));
  common.erase(std::string(kExperimentNameKey));
  return common.dump();
}

}  // namespace gridexp
