// config.cpp: config.yaml text -> ExperimentConfig.
//
// yaml-cpp does the syntax, anchors and aliases; everything after the node tree is ours:
// YAML 1.2 core-schema type resolution (yaml-cpp leaves every scalar as text), refusing plain
// scalars YAML 1.1 read otherwise, duplicate keys (yaml-cpp keeps both pairs and lookups
// return the first, so they are caught here by walking the pairs), and the experiment's own
// rules. yaml-cpp throws; nothing leaves this file but Status values, each naming
// file:line:column and the key.
//
// yaml-cpp is first run over the text with an event handler that builds nothing (a pass
// costs about a second for the largest file accepted), which stops at a second document and
// at kMaxParsedNodes: YAML::LoadAll builds every document before returning, and yaml-cpp 0.7
// and 0.8 (before upstream PR 1319) start a new empty document at a stray ',' forever, so
// `printf , > config.yaml` once took all memory.
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
#include <sstream>
#include <system_error>
#include <unordered_map>
#include <utility>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "server/terminal_text.h"

namespace gridexp {
namespace {

using nlohmann::json;

// Far beyond any real config; they stop alias cycles and alias "billion laughs" bombs before
// they exhaust the stack or memory.
constexpr std::size_t kMaxNesting = 128;
constexpr std::size_t kMaxValues = 1'000'000;
constexpr std::size_t kMaxExpandedTextBytes = 64 << 20;

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
  return Status::invalid_argument(
      terminal_safe(source_name + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                    std::string(subject.empty() ? kTopLevel : subject) + ": " + what));
}

// --- YAML 1.1 readings that YAML 1.2 does not share -------------------------------------------
//
// The seed read configs with PyYAML (YAML 1.1). A plain scalar that YAML 1.1 resolves to a
// bool, a number or a date that YAML 1.2 reads differently would silently change meaning
// (`no` becomes a truthy string), so it is refused. The patterns are PyYAML's resolvers (and
// the 1.1 spec's y/n booleans). Scalars PyYAML left as strings that YAML 1.2 reads as numbers
// (`1e-3`, `-.5`, `0o17`, `08`) are kept: the number is what was meant.

// What YAML 1.1 made of a plain scalar whose YAML 1.2 reading differs.
struct Yaml11Reading {
  std::string meaning;  // "true", "90", "a date"
  std::string note;     // how YAML 1.1 read it: " (octal)", or empty
  std::string advice;   // what to write instead
};

bool is_base_digit(char c, int base) {
  if (base == 2) return c == '0' || c == '1';
  if (base == 8) return c >= '0' && c <= '7';
  if (base == 16) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  return c >= '0' && c <= '9';
}

// Digits of `base` and underscores, at least one character.
bool is_yaml11_digits(std::string_view text, int base) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [base](char c) {
    return c == '_' || is_base_digit(c, base);
  });
}

// The value of digits and underscores; nullopt beyond 64 bits.
std::optional<std::uint64_t> yaml11_digits_value(std::string_view text, int base) {
  std::uint64_t value = 0;
  for (char c : text) {
    if (c == '_') continue;
    std::uint64_t digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / base) return std::nullopt;
    value = value * base + digit;
  }
  return value;
}

std::string signed_meaning(bool negative, std::optional<std::uint64_t> magnitude) {
  if (!magnitude) return "a number";
  return (negative && *magnitude != 0 ? "-" : "") + std::to_string(*magnitude);
}

Yaml11Reading number_reading(std::string meaning, std::string note) {
  std::string advice = meaning == "a number" ? "write it in decimal" : "write " + meaning;
  return {std::move(meaning), std::move(note), std::move(advice) + ", or quote it"};
}

// [1-9][0-9_]* or [0-9][0-9_]* (`leading_zero`), then (:[0-5]?[0-9])+: sexagesimal, whose
// value is folded base 60; nullopt when it is not one.
std::optional<double> sexagesimal_value(std::string_view text, bool leading_zero) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view head = text.substr(0, colon);
  if (!is_yaml11_digits(head, 10) || head.front() == '_' ||
      (!leading_zero && head.front() == '0')) {
    return std::nullopt;
  }
  double value = 0;
  for (char c : head) {
    if (c != '_') value = value * 10 + (c - '0');
  }
  std::string_view rest = text.substr(colon);
  while (!rest.empty()) {
    // :[0-5]?[0-9]
    if (rest.front() != ':') return std::nullopt;
    std::size_t end = rest.find(':', 1);
    std::string_view part = rest.substr(1, end == std::string_view::npos ? end : end - 1);
    bool valid =
        (part.size() == 1 && is_base_digit(part[0], 10)) ||
        (part.size() == 2 && part[0] >= '0' && part[0] <= '5' && is_base_digit(part[1], 10));
    if (!valid) return std::nullopt;
    value = value * 60 + std::stoi(std::string(part));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  return value;
}

std::optional<Yaml11Reading> yaml11_sexagesimal_reading(std::string_view text, bool negative) {
  std::string sign = negative ? "-" : "";
  if (std::optional<double> whole = sexagesimal_value(text, /*leading_zero=*/false)) {
    if (*whole >= 1.8e19) return number_reading("a number", " (base 60)");  // past 64 bits
    return number_reading(signed_meaning(negative, static_cast<std::uint64_t>(*whole)),
                          " (base 60)");
  }
  // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
  std::size_t dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view fraction = text.substr(dot + 1);
  if (!fraction.empty() && !is_yaml11_digits(fraction, 10)) return std::nullopt;
  std::optional<double> whole = sexagesimal_value(text.substr(0, dot), /*leading_zero=*/true);
  if (!whole) return std::nullopt;
  std::string digits = "0.";
  for (char c : fraction) {
    if (c != '_') digits += c;
  }
  double value = *whole + std::stod(digits);
  return number_reading(json(negative ? -value : value).dump(), " (base 60)");
}

// [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? or \.[0-9][0-9_]*([eE][-+][0-9]+)? with an
// underscore, which YAML 1.1 dropped.
std::optional<Yaml11Reading> yaml11_underscored_float_reading(std::string_view text, bool negative,
                                                              bool had_sign) {
  if (text.find('_') == std::string_view::npos) return std::nullopt;
  std::size_t exponent = text.find_first_of("eE");
  std::string_view mantissa = text.substr(0, exponent);
  if (exponent != std::string_view::npos) {
    std::string_view power = text.substr(exponent + 1);
    if (power.size() < 2 || (power[0] != '-' && power[0] != '+') ||
        !is_digits(power.substr(1), 10)) {
      return std::nullopt;
    }
  }
  std::size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view whole = mantissa.substr(0, dot);
  std::string_view fraction = mantissa.substr(dot + 1);
  if (whole.empty()) {
    if (had_sign || fraction.empty() || fraction.front() == '_' ||
        !is_yaml11_digits(fraction, 10)) {
      return std::nullopt;
    }
  } else if (whole.front() == '_' || !is_yaml11_digits(whole, 10) ||
             (!fraction.empty() && !is_yaml11_digits(fraction, 10))) {
    return std::nullopt;
  }
  std::string plain;
  for (char c : text) {
    if (c != '_') plain += c;
  }
  double value = 0;
  std::from_chars(plain.data(), plain.data() + plain.size(), value);
  return number_reading(json(negative ? -value : value).dump(), "");
}

// PyYAML's timestamp: yyyy-mm-dd, or yyyy-m-d then T or blanks, h:mm:ss, an optional
// fraction and an optional zone (Z, +h, +hh:mm).
bool is_yaml11_timestamp(std::string_view text) {
  std::size_t at = 0;
  auto digits = [&](std::size_t minimum, std::size_t maximum) {
    std::size_t count = 0;
    while (at < text.size() && count < maximum && is_base_digit(text[at], 10)) ++at, ++count;
    return count >= minimum;
  };
  auto literal = [&](char c) {
    if (at < text.size() && text[at] == c) return ++at, true;
    return false;
  };
  auto blanks = [&] {
    std::size_t start = at;
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
    return at > start;
  };
  if (!digits(4, 4) || !literal('-')) return false;
  std::size_t month = at;
  if (digits(2, 2) && literal('-') && digits(2, 2) && at == text.size()) return true;
  at = month;
  if (!digits(1, 2) || !literal('-') || !digits(1, 2)) return false;
  if (!literal('T') && !literal('t') && !blanks()) return false;
  if (!digits(1, 2) || !literal(':') || !digits(2, 2) || !literal(':') || !digits(2, 2)) {
    return false;
  }
  if (literal('.')) digits(0, text.size());
  if (at == text.size()) return true;
  blanks();
  if (literal('Z')) return at == text.size();
  if (!literal('+') && !literal('-')) return false;
  if (!digits(1, 2)) return false;
  if (literal(':') && !digits(2, 2)) return false;
  return at == text.size();
}

// How YAML 1.1 reads plain `text` when that differs from YAML 1.2's reading; nullopt when
// the two agree. A key named y or n is text to PyYAML too, and common: it is let through.
std::optional<Yaml11Reading> yaml11_only_reading(std::string_view text, bool is_key) {
  constexpr std::string_view kAdviceBool = "write true/false, or quote it";
  if (is_one_of(text, {"yes", "Yes", "YES", "on", "On", "ON"}) ||
      (!is_key && is_one_of(text, {"y", "Y"}))) {
    return Yaml11Reading{"true", "", std::string(kAdviceBool)};
  }
  if (is_one_of(text, {"no", "No", "NO", "off", "Off", "OFF"}) ||
      (!is_key && is_one_of(text, {"n", "N"}))) {
    return Yaml11Reading{"false", "", std::string(kAdviceBool)};
  }
  if (is_yaml11_timestamp(text)) {
    bool date_only = text.size() == 10;
    return Yaml11Reading{date_only ? "a date" : "a date and time", "", "quote it"};
  }
  bool had_sign = text.starts_with('+') || text.starts_with('-');
  bool negative = text.starts_with('-');
  std::string_view body = without_sign(text);
  if (body.starts_with("0b") && is_yaml11_digits(body.substr(2), 2)) {
    return number_reading(signed_meaning(negative, yaml11_digits_value(body.substr(2), 2)),
                          " (binary)");
  }
  if (body.starts_with("0x") && is_yaml11_digits(body.substr(2), 16)) {
    if (!had_sign && body.find('_') == std::string_view::npos) return std::nullopt;
    return number_reading(signed_meaning(negative, yaml11_digits_value(body.substr(2), 16)), "");
  }
  if (body.size() > 1 && body.front() == '0' && is_yaml11_digits(body.substr(1), 8)) {
    std::optional<std::uint64_t> value = yaml11_digits_value(body.substr(1), 8);
    if (value && *value < 8 && body.find('_') == std::string_view::npos) return std::nullopt;
    Yaml11Reading reading = number_reading(signed_meaning(negative, value), " (octal)");
    if (is_core_int(text)) {  // YAML 1.2 reads it as a decimal
      std::string decimal =
          std::string(negative ? "-" : "") + std::string(body.substr(body.find_first_not_of('0')));
      reading.advice = "write " + reading.meaning + " or " + decimal + ", or quote it";
    }
    return reading;
  }
  if (body.find('_') != std::string_view::npos && is_yaml11_digits(body, 10) &&
      body.front() >= '1' && body.front() <= '9') {
    return number_reading(signed_meaning(negative, yaml11_digits_value(body, 10)), "");
  }
  if (body.find(':') != std::string_view::npos) return yaml11_sexagesimal_reading(body, negative);
  return yaml11_underscored_float_reading(body, negative, had_sign);
}

// "'010' means 8 in YAML 1.1 (octal) and 10 in YAML 1.2; write 8 or 10, or quote it".
std::string yaml11_difference(const std::string& text, const Yaml11Reading& reading) {
  std::string yaml12 = "the string \"" + text + "\"";
  if (core_type_of(text) == CoreType::kInt) {
    if (std::optional<json> value = core_int_value(text)) yaml12 = value->dump();
  }
  return "'" + text + "' means " + reading.meaning + " in YAML 1.1" + reading.note + " and " +
         yaml12 + " in YAML 1.2; " + reading.advice;
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

  // A mapping's pairs in document order, each key checked: a non-null scalar, valid UTF-8, not
  // a merge key, not a duplicate.
  Result<std::vector<MappingEntry>> entries_of(const YAML::Node& mapping, const std::string& path) {
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

  // Aliases repeat text without repeating its bytes in the file: a 1 MB string referred to
  // by a million aliases would be a terabyte.
  Status spend_text(const YAML::Node& node, const std::string& path, std::size_t bytes) {
    expanded_text_bytes_ += bytes;
    if (expanded_text_bytes_ <= kMaxExpandedTextBytes) return {};
    return error(node.Mark(), path,
                 "the config expands to more than " + std::to_string(kMaxExpandedTextBytes >> 20) +
                     " MiB of text; are aliases repeating large parts of it?");
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
    if (tag == kPlainTag) {
      if (std::optional<Yaml11Reading> reading = yaml11_only_reading(text, /*is_key=*/false)) {
        return error(node.Mark(), path, yaml11_difference(text, *reading));
      }
      return typed_value(type, node, path);
    }
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
  std::size_t expanded_text_bytes_ = 0;
};

// --- The experiment's rules -----------------------------------------------------------------

// The events of a YAML stream, counted and then dropped: it stops the pass (by throwing) at
// the second document or past kMaxParsedNodes nodes.
class StreamLimits final : public YAML::EventHandler {
 public:
  struct SecondDocument {
    YAML::Mark mark;
  };
  struct TooManyNodes {
    YAML::Mark mark;
  };

  int documents() const { return documents_; }
  const YAML::Mark& first_document_mark() const { return first_document_mark_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) throw SecondDocument{mark};
    first_document_mark_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { count_node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { count_node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    count_node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    count_node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    count_node(mark);
  }
  void OnMapEnd() override {}

 private:
  void count_node(const YAML::Mark& mark) {
    if (++nodes_ > kMaxParsedNodes) throw TooManyNodes{mark};
  }

  int documents_ = 0;
  std::size_t nodes_ = 0;
  YAML::Mark first_document_mark_;
};

Status yaml_error(const std::string& source_name, const YAML::Exception& e) {
  // DeepRecursion's own message is only "bad file".
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
    return config_error(source_name, e.mark, "invalid YAML", "nested too deeply");
  }
  return config_error(source_name, e.mark, "invalid YAML", e.msg);
}

// Checks the stream's limits without building anything; the caller then builds the first
// document. Returns whether the stream has a document at all.
Result<bool> check_stream_limits(const std::string& yaml_text, const std::string& source_name) {
  std::istringstream stream(yaml_text);
  StreamLimits limits;
  try {
    YAML::Parser parser(stream);
    if (!parser.HandleNextDocument(limits)) return false;
    parser.HandleNextDocument(limits);
  } catch (const StreamLimits::SecondDocument& second) {
    // yaml-cpp makes no progress at a ',' outside a flow collection: it starts another empty
    // document there, and another, for ever. No real document starts with one.
    std::size_t at = static_cast<std::size_t>(std::max(second.mark.pos, 0));
    if (at < yaml_text.size() && yaml_text[at] == ',') {
      return config_error(source_name, second.mark, "invalid YAML",
                          "unexpected ',' outside a [list] or {mapping}");
    }
    return config_error(source_name, second.mark, kTopLevel,
                        "a config is one YAML document, but a second one starts here");
  } catch (const StreamLimits::TooManyNodes& too_many) {
    return config_error(source_name, too_many.mark, kTopLevel,
                        "the config has more than " + std::to_string(kMaxParsedNodes) +
                            " values; a grid's axes need far fewer");
  } catch (const YAML::Exception& e) {
    return yaml_error(source_name, e);
  }
  return limits.documents() > 0;
}

Result<YAML::Node> load_single_document(std::string_view yaml_text,
                                        const std::string& source_name) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return config_error(source_name, YAML::Mark(), kTopLevel,
                        "the config is larger than " + std::to_string(kMaxConfigBytes >> 20) +
                            " MiB, the most a config may be");
  }
  std::string text(yaml_text);
  Result<bool> has_document = check_stream_limits(text, source_name);
  if (!has_document) return has_document.status();
  YAML::Node root;
  if (*has_document) {
    try {
      root = YAML::Load(text);  // the first document only
    } catch (const YAML::Exception& e) {
      return yaml_error(source_name, e);
    }
  }
  if (!*has_document || root.IsNull()) {
    return config_error(source_name, *has_document ? root.Mark() : YAML::Mark(), kTopLevel,
                        "the config is empty; it needs experiment_name and hyperparameters");
  }
  return root;
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

struct CloseFile {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

Status unreadable(const std::filesystem::path& path, int error_number) {
  return Status::invalid_argument(path.string() + ": cannot read the config file: " +
                                  std::generic_category().message(error_number));
}

// Reads at most one byte more than a config may have: parse_config refuses that before
// parsing, and a huge file (or a pipe that never ends) is not read into memory.
Result<std::string> read_file(const std::filesystem::path& path) {
  std::unique_ptr<std::FILE, CloseFile> file(std::fopen(path.c_str(), "rb"));
  if (!file) return unreadable(path, errno);
  std::string text;
  char buffer[1 << 16];
  std::size_t count = 0;
  while (text.size() <= kMaxConfigBytes &&
         (count = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) {
    text.append(buffer, count);
  }
  if (std::ferror(file.get())) return unreadable(path, errno);
  return text;
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
  Result<std::string> text = read_file(path);
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
