// The YAML 1.2 core schema's patterns, written out as small recognizers (no regex: these run
// for every scalar of a config that may hold a million values).
#include "server/yaml_core_schema.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <system_error>

namespace gridexp::config_yaml {
namespace {

using nlohmann::json;

bool is_core_null(std::string_view text) {
  return is_one_of(text, {"", "~", "null", "Null", "NULL"});
}

bool is_core_bool(std::string_view text) {
  return is_one_of(text, {"true", "True", "TRUE", "false", "False", "FALSE"});
}

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

std::optional<json> unsigned_int_value(std::string_view digits, int base) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return json(static_cast<std::int64_t>(value));
  }
  return json(value);
}

}  // namespace

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

bool is_core_int(std::string_view text) {
  if (text.starts_with("0o")) return is_digits(text.substr(2), 8);
  if (text.starts_with("0x")) return is_digits(text.substr(2), 16);
  return is_digits(without_sign(text), 10);
}

bool is_core_infinity(std::string_view text) {
  return is_one_of(without_sign(text), {".inf", ".Inf", ".INF"});
}

bool is_core_nan(std::string_view text) { return is_one_of(text, {".nan", ".NaN", ".NAN"}); }

CoreType core_type_of(std::string_view text) {
  if (is_core_null(text)) return CoreType::kNull;
  if (is_core_bool(text)) return CoreType::kBool;
  if (is_core_int(text)) return CoreType::kInt;
  if (is_core_float(text)) return CoreType::kFloat;
  return CoreType::kString;
}

std::optional<json> core_float_value(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);  // from_chars takes '-' but not '+'
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return json(value);
}

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

}  // namespace gridexp::config_yaml
