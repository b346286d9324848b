#include "server/grid.h"

#include <cassert>

#include "common/sha256.h"

namespace gridexp {
namespace {

// The canonical text of a JSON value: nlohmann's compact dump, whose objects are already
// key-sorted, with non-ASCII kept as UTF-8.
std::string canonical(const nlohmann::json& value) { return value.dump(); }

std::string id_from_canonical_document(const std::string& document) {
  return sha256_hex(document).substr(0, 16);
}

// The canonical document's keys in sorted order: "config_generation" < "experiment_name" <
// "hyperparameters"; generation 0 has no "config_generation", so ids from before generations
// existed stay as they were.
std::string id_document_prefix(const std::string& experiment_name, std::int64_t generation) {
  std::string prefix = "{";
  if (generation != 0) prefix += "\"config_generation\":" + std::to_string(generation) + ",";
  return prefix + "\"experiment_name\":" + canonical(nlohmann::json(experiment_name)) +
         ",\"hyperparameters\":";
}

}  // namespace

Grid::Grid(const ExperimentConfig& config, std::int64_t config_generation)
    : experiment_name_(config.experiment_name),
      config_generation_(config_generation),
      common_config_(common_config_json(config)),
      id_prefix_(id_document_prefix(experiment_name_, config_generation)) {
  size_ = 1;
  for (const Axis& axis : config.axes) {
    keys_.push_back(axis.key);
    values_.push_back(axis.values);
    key_prefixes_.push_back(canonical(nlohmann::json(axis.key)) + ":");
    std::vector<std::string> dumped;
    dumped.reserve(axis.values.size());
    for (const nlohmann::json& value : axis.values) dumped.push_back(canonical(value));
    canonical_values_.push_back(std::move(dumped));
    size_ *= axis.values.size();
  }
}

nlohmann::json Grid::hyperparameters_at(std::uint64_t index) const {
  assert(index < size_);
  nlohmann::json point = nlohmann::json::object();
  for (std::size_t axis = keys_.size(); axis-- > 0;) {
    std::uint64_t radix = values_[axis].size();
    point[keys_[axis]] = values_[axis][index % radix];
    index /= radix;
  }
  return point;
}

std::string Grid::hyperparameters_json_at(std::uint64_t index) const {
  assert(index < size_);
  std::vector<std::size_t> digits(keys_.size());
  for (std::size_t axis = keys_.size(); axis-- > 0;) {
    std::uint64_t radix = canonical_values_[axis].size();
    digits[axis] = static_cast<std::size_t>(index % radix);
    index /= radix;
  }
  std::string text = "{";
  for (std::size_t axis = 0; axis < keys_.size(); ++axis) {
    if (axis > 0) text += ',';
    text += key_prefixes_[axis];
    text += canonical_values_[axis][digits[axis]];
  }
  text += '}';
  return text;
}

std::string Grid::id_at(std::uint64_t index) const {
  // Same bytes as the canonical document trial_id() hashes.
  return id_from_canonical_document(id_prefix_ + hyperparameters_json_at(index) + "}");
}

std::string Grid::trial_id(const std::string& experiment_name,
                           const nlohmann::json& hyperparameters, std::int64_t config_generation) {
  nlohmann::json document = {{"experiment_name", experiment_name},
                             {"hyperparameters", hyperparameters}};
  if (config_generation != 0) document["config_generation"] = config_generation;
  return id_from_canonical_document(canonical(document));
}

}  // namespace gridexp
