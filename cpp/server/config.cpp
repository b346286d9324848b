// config.cpp: config.yaml text -> ExperimentConfig.
//
// yaml-cpp does the syntax, anchors and aliases; everything after the node tree is ours:
// YAML 1.2 core-schema type resolution (yaml-cpp leaves every scalar as text), duplicate keys
// (yaml-cpp keeps both pairs and lookups return the first, so they are caught here by walking
// the pairs), and the experiment's own rules. yaml-cpp throws; nothing leaves this file but
// Status values, each naming file:line:column and the key.
#include "server/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

namespace gridexp {
namespace {

using nlohmann::json;

// Far beyond any real config; they stop alias cycles and alias "billion laughs" bombs before
// they exhaust the stack or memory.
constexpr std::size_t kMaxNesting = 128;
constexpr std::size_t kMaxValues = 1'000'000;

constexpr std::string_view kTopLevel = "(top level)";
constexpr std::string_view kExperimentNameKey = "experiment_name";
constexpr std::string_view kHyperparametersKey = "hyperparameters";

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

std::string child_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string item_path(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::string describe(const YAML::Node& node) {
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  if (node.IsNull()) return "null";
  return "the scalar '" + node.Scalar() + "'";
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

// --- YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution) ---------------

enum class CoreType { kNull, kBool, kInt, kFloat, kString };

bool is_one_of(std::string_view text, std::initializer_list<std::string_view> spellings) {
  return std::find(spellings.begin(), spellings.end(), text) != spellings.end();
}

std::string_view without_sign(std::string_view text) {
  return text.starts_with('+') || text.starts_with('-') ? text.substr(1) : text;
}

bool is_digits(std::string_view text, int base) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [base](char c) {
    if (base == 8) return c >= '0' && c <= '7';
    if (base == 16)
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    return c >= '0' && c <= '9';
  });
}

bool is_core_null(std::string_view text) {
  return is_one_of(text, {"", "~", "null", "Null", "NULL"});
}

bool is_core_bool(std::string_view text) {
  return is_one_of(text, {"true", "True", "TRUE", "false", "False", "FALSE"});
}

bool is_core_int(std::string_view text) {
  if (text.starts_with("0o")) return is_digits(text.substr(2), 8);
  if (text.starts_with("0x")) return is_digits(text.substr(2), 16);
  return is_digits(without_sign(text), 10);
}

bool is_core_infinity(std::string_view text) {
  return is_one_of(without_sign(text), {".inf", ".Inf", ".INF"});
}

bool is_core_nan(std::string_view text) { return is_one_of(text, {".nan", ".NaN", ".NAN"}); }

// [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool is_core_decimal_float(std::string_view text) {
  std::string_view unsigned_text = without_sign(text);
  std::size_t exponent_start = unsigned_text.find_first_of("eE");
  std::string_view mantissa = unsigned_text.substr(0, exponent_start);
  if (exponent_start != std::string_view::npos &&
      !is_digits(without_sign(unsigned_text.substr(exponent_start + 1)), 10)) {
    return false;
  }
  std::size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return is_digits(mantissa, 10);
  std::string_view whole = mantissa.substr(0, dot);
  std::string_view fraction = mantissa.substr(dot + 1);
  if (whole.empty()) return is_digits(fraction, 10);
  return is_digits(whole, 10) && (fraction.empty() || is_digits(fraction, 10));
}

bool is_core_float(std::string_view text) {
  return is_core_infinity(text) || is_core_nan(text) || is_core_decimal_float(text);
}

CoreType core_type_of(std::string_view text) {
  if (is_core_null(text)) return CoreType::kNull;
  if (is_core_bool(text)) return CoreType::kBool;
  if (is_core_int(text)) return CoreType::kInt;
  if (is_core_float(text)) return CoreType::kFloat;
  return CoreType::kString;
}

// The following parse text already known to match its pattern; nullopt means out of range.

std::optional<json> core_float_value(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);  // from_chars takes '-' but not '+'
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return json(value);
}

std::optional<json> unsigned_int_value(std::string_view digits, int base) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return json(static_cast<std::int64_t>(value));
  }
  return json(value);
}

// int64, else uint64, else (decimal only) a float: nlohmann's own JSON parser reads integers
// beyond 64 bits the same way, so the value means the same once it is JSON text.
std::optional<json> core_int_value(std::string_view text) {
  if (text.starts_with("0o")) return unsigned_int_value(text.substr(2), 8);
  if (text.starts_with("0x")) return unsigned_int_value(text.substr(2), 16);
  if (text.starts_with('+')) text.remove_prefix(1);
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc() && end == text.data() + text.size()) return json(value);
  if (!text.starts_with('-')) {
    if (std::optional<json> big = unsigned_int_value(text, 10)) return big;
  }
  return core_float_value(text);
}

// --- YAML nodes -> JSON -------------------------------------------------------------------

struct MappingEntry {
  std::string key;
  std::string path;  // the dotted key path used in error messages
  YAML::Node key_node;
  YAML::Node value;
};

// yaml-cpp marks an empty value (`key:` and nothing) at the next token, often the next line,
// so errors about a null value point at its key instead.
YAML::Mark value_mark(const MappingEntry& entry) {
  return entry.value.IsNull() ? entry.key_node.Mark() : entry.value.Mark();
}

Status config_error(const std::string& source_name, const YAML::Mark& mark,
                    std::string_view subject, const std::string& what) {
  int line = std::max(mark.line, 0) + 1;
  int column = std::max(mark.column, 0) + 1;
  return Status::invalid_argument(source_name + ":" + std::to_string(line) + ":" +
                                  std::to_string(column) + ": " +
                                  std::string(subject.empty() ? kTopLevel : subject) + ": " + what);
}

// Converts one document's nodes to JSON, remembering which collections are open so that an
// alias pointing back into its own ancestors is an error instead of infinite recursion.
class Converter {
 public:
  explicit Converter(const std::string& source_name) : source_name_(source_name) {}

  Status error(const YAML::Mark& mark, std::string_view path, const std::string& what) const {
    return config_error(source_name_, mark, path, what);
  }

  Result<json> to_json(const YAML::Node& node, const std::string& path) {
    if (++converted_values_ > kMaxValues) {
      return error(node.Mark(), path,
                   "the config expands to more than " + std::to_string(kMaxValues) +
                       " values; are aliases repeating large parts of it?");
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

  // A mapping's pairs in document order, each key checked: a non-null scalar, valid UTF-8, not
  // a merge key, not a duplicate.
  Result<std::vector<MappingEntry>> entries_of(const YAML::Node& mapping,
                                               const std::string& path) const {
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

 private:
  Result<json> sequence_to_json(const YAML::Node& sequence, const std::string& path) {
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

  Result<json> mapping_to_json(const YAML::Node& mapping, const std::string& path) {
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

  Status check_collection_tag(const YAML::Node& node, const std::string& path,
                              std::string_view core_name) const {
    const std::string& tag = node.Tag();
    if (tag == kPlainTag || tag == kNonSpecificTag || tag == core_tag(core_name)) return {};
    return error(node.Mark(), path, "unsupported tag " + shown_tag(tag));
  }

  Result<json> scalar_to_json(const YAML::Node& node, const std::string& path) const {
    if (node.IsNull()) return json(nullptr);  // yaml-cpp's own null: empty, ~, null, Null, NULL
    const std::string& text = node.Scalar();
    if (!is_valid_utf8(text)) return error(node.Mark(), path, "not valid UTF-8");
    const std::string& tag = node.Tag();
    if (tag == kNonSpecificTag || tag == core_tag("str")) return json(text);
    CoreType type = core_type_of(text);
    if (tag == kPlainTag) return typed_value(type, node, path);
    if (tag == core_tag("null") && type == CoreType::kNull) return json(nullptr);
    if (tag == core_tag("bool") && type == CoreType::kBool) return typed_value(type, node, path);
    if (tag == core_tag("int") && type == CoreType::kInt) return typed_value(type, node, path);
    if (tag == core_tag("float") && (type == CoreType::kInt || type == CoreType::kFloat)) {
      return typed_value(CoreType::kFloat, node, path);
    }
    if (tag == core_tag("null") || tag == core_tag("bool") || tag == core_tag("int") ||
        tag == core_tag("float")) {
      return error(node.Mark(), path, "'" + text + "' is not a valid " + shown_tag(tag));
    }
    return error(
        node.Mark(), path,
        "unsupported tag " + shown_tag(tag) + "; use !!str, !!int, !!float, !!bool or !!null");
  }

  Result<json> typed_value(CoreType type, const YAML::Node& node, const std::string& path) const {
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

  const std::string& source_name_;
  std::vector<YAML::Node> open_collections_;
  std::size_t converted_values_ = 0;
};

// --- The experiment's rules -----------------------------------------------------------------

Result<YAML::Node> load_single_document(std::string_view yaml_text,
                                        const std::string& source_name) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::DeepRecursion& e) {
    // Its own message is only "bad file".
    return config_error(source_name, e.mark, "invalid YAML", "nested too deeply");
  } catch (const YAML::Exception& e) {
    return config_error(source_name, e.mark, "invalid YAML", e.msg);
  }
  if (documents.empty() || (documents.size() == 1 && documents.front().IsNull())) {
    YAML::Mark start = documents.empty() ? YAML::Mark() : documents.front().Mark();
    return config_error(source_name, start, kTopLevel,
                        "the config is empty; it needs experiment_name and hyperparameters");
  }
  if (documents.size() > 1) {
    return config_error(source_name, documents[1].Mark(), kTopLevel,
                        "a config is one YAML document, but a second one starts here");
  }
  return documents.front();
}

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

struct CloseFile {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

Status unreadable(const std::filesystem::path& path, int error_number) {
  return Status::invalid_argument(path.string() + ": cannot read the config file: " +
                                  std::generic_category().message(error_number));
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, CloseFile> file(std::fopen(path.c_str(), "rb"));
  if (!file) return unreadable(path, errno);
  std::string text;
  char buffer[1 << 16];
  std::size_t count = 0;
  while ((count = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, count);
  if (std::ferror(file.get())) return unreadable(path, errno);
  return text;
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
  Result<std::string> text = read_file(path);
  if (!text) return text.status();
  return parse_config(*text, path.string());
}

}  // namespace gridexp
