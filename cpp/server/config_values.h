// YAML nodes -> JSON values for the config parser, with every check that is not the
// experiment's own: YAML 1.2 core-schema types, refused YAML 1.1 readings, tags, keys (text,
// valid UTF-8, no merge keys, no duplicates), alias cycles, nesting depth and the expansion
// limits. Every error is a Status naming file:line:column and the key path
// ("config.yaml:7:5: hyperparameters.lr: ..."). Private to the config parser (config.cpp).
//
// A Converter belongs to one thread and one document; the free functions are pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "server/yaml_core_schema.h"

namespace gridexp::config_yaml {

// The subject of errors about the document as a whole.
inline constexpr std::string_view kTopLevel = "(top level)";

// "a list", "a mapping", "null" or "the scalar '<text>'".
std::string describe(const YAML::Node& node);

// "path[index]": the key path of a sequence's item.
std::string item_path(const std::string& parent, std::size_t index);

// "<source_name>:<line>:<column>: <subject>: <what>", escaped for a terminal; an empty
// subject is kTopLevel.
Status config_error(const std::string& source_name, const YAML::Mark& mark,
                    std::string_view subject, const std::string& what);

struct MappingEntry {
  std::string key;
  std::string path;  // the dotted key path used in error messages
  YAML::Node key_node;
  YAML::Node value;
};

// Where errors about an entry's value point: yaml-cpp marks an empty value (`key:` and
// nothing) at the next token, often the next line, so a null value's errors point at its key.
YAML::Mark value_mark(const MappingEntry& entry);

// Converts one document's nodes to JSON, remembering which collections are open so that an
// alias pointing back into its own ancestors is an error instead of infinite recursion.
class Converter {
 public:
  // `source_name` labels errors and must outlive the Converter.
  explicit Converter(const std::string& source_name) : source_name_(source_name) {}

  Status error(const YAML::Mark& mark, std::string_view path, const std::string& what) const {
    return config_error(source_name_, mark, path, what);
  }

  Result<nlohmann::json> to_json(const YAML::Node& node, const std::string& path);

  // A mapping's pairs in document order, each key checked: a non-null scalar, valid UTF-8, not
  // a merge key, not a duplicate.
  Result<std::vector<MappingEntry>> entries_of(const YAML::Node& mapping, const std::string& path);

 private:
  Result<nlohmann::json> sequence_to_json(const YAML::Node& sequence, const std::string& path);
  Result<nlohmann::json> mapping_to_json(const YAML::Node& mapping, const std::string& path);
  Status spend_text(const YAML::Node& node, const std::string& path, std::size_t bytes);
  Status check_collection_tag(const YAML::Node& node, const std::string& path,
                              std::string_view core_name) const;
  Result<nlohmann::json> scalar_to_json(const YAML::Node& node, const std::string& path) const;
  Result<nlohmann::json> plain_scalar_to_json(const YAML::Node& node,
                                              const std::string& path) const;
  Result<nlohmann::json> tagged_scalar_to_json(const YAML::Node& node,
                                               const std::string& path) const;
  Result<nlohmann::json> typed_value(CoreType type, const YAML::Node& node,
                                     const std::string& path) const;

  const std::string& source_name_;
  std::vector<YAML::Node> open_collections_;
  std::size_t converted_values_ = 0;
  std::size_t expanded_text_bytes_ = 0;
};

}  // namespace gridexp::config_yaml
