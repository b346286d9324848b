// yaml-cpp does the syntax, anchors and aliases and leaves every scalar as text; this is the
// type resolution and the checks between its node tree and JSON.
#include "server/config_values.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <utility>

#include "server/terminal_text.h"
#include "server/yaml11_refusals.h"

namespace gridexp::config_yaml {
namespace {

using nlohmann::json;

// Far beyond any real config; they stop alias cycles and alias "billion laughs" bombs before
// they exhaust the stack or memory.
constexpr std::size_t kMaxNesting = 128;
constexpr std::size_t kMaxValues = 1'000'000;
constexpr std::size_t kMaxExpandedTextBytes = 64 << 20;

// yaml-cpp's tags: "?" for a plain scalar or an untagged collection, "!" for a quoted or block
// scalar (always a string), and explicit `!!x` tags expanded to the core prefix.
constexpr std::string_view kPlainTag = "?";
constexpr std::string_view kNonSpecificTag = "!";
constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";

std::string core_tag(std::string_view name) {
  return std::string(kCoreTagPrefix) + std::string(name);
}

std::string shown_tag(const std::string& tag) {
  if (tag.starts_with(kCoreTagPrefix)) return "!!" + tag.substr(kCoreTagPrefix.size());
  return tag;
}

// The type an explicit !!null, !!bool, !!int or !!float tag asks for.
std::optional<CoreType> core_type_of_tag(const std::string& tag) {
  if (tag == core_tag("null")) return CoreType::kNull;
  if (tag == core_tag("bool")) return CoreType::kBool;
  if (tag == core_tag("int")) return CoreType::kInt;
  if (tag == core_tag("float")) return CoreType::kFloat;
  return std::nullopt;
}

std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// True when nlohmann's strict dump() accepts `text`. The grid and every JSON sent to workers are
// written by that dump, which throws on invalid UTF-8, so asking it keeps the two in agreement.
bool is_valid_utf8(const std::string& text) {
  try {
    static_cast<void>(json(text).dump());
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

}  // namespace

std::string describe(const YAML::Node& node) {
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.IsNull()) return "null";
  return "the scalar '" + node.Scalar() + "'";
}

std::string item_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

Status config_error(const std::string& source_name, const YAML::Mark& mark,
                    std::string_view subject, const std::string& what) {
  int line = std::max(mark.line, 0) + 1;
  int column = std::max(mark.column, 0) + 1;
  return Status::invalid_argument(
      terminal_safe(source_name + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                    std::string(subject.empty() ? kTopLevel : subject) + ": " + what));
}

YAML::Mark value_mark(const MappingEntry& entry) {
  return entry.value.IsNull() ? entry.key_node.Mark() : entry.value.Mark();
}

Result<json> Converter::to_json(const YAML::Node& node, const std::string& path) {
  if (++converted_values_ > kMaxValues) {
    return error(node.Mark(), path,
                 "the config expands to more than " + std::to_string(kMaxValues) +
                     " values; are aliases repeating large parts of it?");
  }
  if (node.IsScalar()) {
    if (Status status = spend_text(node, path, node.Scalar().size()); !status) return status;
  }
  if (!node.IsSequence() && !node.IsMap()) return scalar_to_json(node, path);
  for (const YAML::Node& open : open_collections_) {
    if (open.is(node)) {
      return error(node.Mark(), path, "an alias refers to a collection that contains it");
    }
  }
  if (open_collections_.size() >= kMaxNesting) {
    return error(node.Mark(), path,
                 "values nest deeper than " + std::to_string(kMaxNesting) + " levels");
  }
  open_collections_.push_back(node);
  Result<json> value =
      node.IsSequence() ? sequence_to_json(node, path) : mapping_to_json(node, path);
  open_collections_.pop_back();
  return value;
}

Result<std::vector<MappingEntry>> Converter::entries_of(const YAML::Node& mapping,
                                                        const std::string& path) {
  if (Status status = check_collection_tag(mapping, path, "map"); !status) return status;
  std::vector<MappingEntry> entries;
  std::unordered_map<std::string, int> line_of_key;
  for (const auto& pair : mapping) {
    const YAML::Node& key = pair.first;
    if (!key.IsScalar()) {
      return error(key.Mark(), path, "a key must be text, not " + describe(key));
    }
    const std::string& text = key.Scalar();
    if (!is_valid_utf8(text)) return error(key.Mark(), path, "a key is not valid UTF-8");
    std::string key_path = child_path(path, text);
    if (Status status = spend_text(key, key_path, text.size()); !status) return status;
    if (key.Tag() == kPlainTag) {
      if (std::optional<Yaml11Reading> reading = yaml11_only_reading(text, /*is_key=*/true)) {
        return error(key.Mark(), key_path, "the key " + yaml11_difference(text, *reading));
      }
    }
    if (key.Tag() == kPlainTag && text == "<<") {
      return error(key.Mark(), key_path,
                   "merge keys are not supported (YAML 1.2 has none); write the keys out");
    }
    auto [first, inserted] = line_of_key.emplace(text, key.Mark().line + 1);
    if (!inserted) {
      return error(key.Mark(), key_path,
                   "duplicate key; first defined at line " + std::to_string(first->second));
    }
    entries.push_back({text, std::move(key_path), key, pair.second});
  }
  return entries;
}

Result<json> Converter::sequence_to_json(const YAML::Node& sequence, const std::string& path) {
  if (Status status = check_collection_tag(sequence, path, "seq"); !status) return status;
  json items = json::array();
  std::size_t index = 0;
  for (const YAML::Node& item : sequence) {
    Result<json> value = to_json(item, item_path(path, index++));
    if (!value) return value.status();
    items.push_back(std::move(*value));
  }
  return items;
}

Result<json> Converter::mapping_to_json(const YAML::Node& mapping, const std::string& path) {
  Result<std::vector<MappingEntry>> entries = entries_of(mapping, path);
  if (!entries) return entries.status();
  json object = json::object();
  for (const MappingEntry& entry : *entries) {
    Result<json> value = to_json(entry.value, entry.path);
    if (!value) return value.status();
    object[entry.key] = std::move(*value);
  }
  return object;
}

// Aliases repeat text without repeating its bytes in the file: a 1 MB string referred to
// by a million aliases would be a terabyte.
Status Converter::spend_text(const YAML::Node& node, const std::string& path, std::size_t bytes) {
  expanded_text_bytes_ += bytes;
  if (expanded_text_bytes_ <= kMaxExpandedTextBytes) return {};
  return error(node.Mark(), path,
               "the config expands to more than " + std::to_string(kMaxExpandedTextBytes >> 20) +
                   " MiB of text; are aliases repeating large parts of it?");
}

Status Converter::check_collection_tag(const YAML::Node& node, const std::string& path,
                                       std::string_view core_name) const {
  const std::string& tag = node.Tag();
  if (tag == kPlainTag || tag == kNonSpecificTag || tag == core_tag(core_name)) return {};
  return error(node.Mark(), path, "unsupported tag " + shown_tag(tag));
}

Result<json> Converter::scalar_to_json(const YAML::Node& node, const std::string& path) const {
  if (node.IsNull()) return json(nullptr);  // yaml-cpp's own null: empty, ~, null, Null, NULL
  const std::string& text = node.Scalar();
  if (!is_valid_utf8(text)) return error(node.Mark(), path, "not valid UTF-8");
  const std::string& tag = node.Tag();
  if (tag == kNonSpecificTag || tag == core_tag("str")) return json(text);
  if (tag == kPlainTag) return plain_scalar_to_json(node, path);
  return tagged_scalar_to_json(node, path);
}

Result<json> Converter::plain_scalar_to_json(const YAML::Node& node,
                                             const std::string& path) const {
  const std::string& text = node.Scalar();
  if (std::optional<Yaml11Reading> reading = yaml11_only_reading(text, /*is_key=*/false)) {
    return error(node.Mark(), path, yaml11_difference(text, *reading));
  }
  return typed_value(core_type_of(text), node, path);
}

// An explicit core tag: the text must match its type (!!float also takes an int's text).
Result<json> Converter::tagged_scalar_to_json(const YAML::Node& node,
                                              const std::string& path) const {
  const std::string& tag = node.Tag();
  std::optional<CoreType> wanted = core_type_of_tag(tag);
  if (!wanted) {
    return error(
        node.Mark(), path,
        "unsupported tag " + shown_tag(tag) + "; use !!str, !!int, !!float, !!bool or !!null");
  }
  const std::string& text = node.Scalar();
  CoreType type = core_type_of(text);
  if (type == *wanted || (*wanted == CoreType::kFloat && type == CoreType::kInt)) {
    return typed_value(*wanted, node, path);
  }
  return error(node.Mark(), path, "'" + text + "' is not a valid " + shown_tag(tag));
}

Result<json> Converter::typed_value(CoreType type, const YAML::Node& node,
                                    const std::string& path) const {
  const std::string& text = node.Scalar();
  std::optional<json> value;
  switch (type) {
    case CoreType::kNull:
      return json(nullptr);
    case CoreType::kBool:
      return json(text.front() == 't' || text.front() == 'T');
    case CoreType::kString:
      return json(text);
    case CoreType::kInt:
      value = core_int_value(text);
      break;
    case CoreType::kFloat:
      // JSON, which carries the config to workers and into trial ids, has no infinity or
      // NaN: they would arrive as None.
      if (is_core_infinity(text) || is_core_nan(text)) {
        return error(node.Mark(), path,
                     text +
                         " cannot be sent to workers (JSON has no infinity or NaN); quote "
                         "it to pass a string");
      }
      value = core_float_value(text);
      break;
  }
  if (!value) return error(node.Mark(), path, text + " is out of range for a 64-bit number");
  return *std::move(value);
}

}  // namespace gridexp::config_yaml
