// PyYAML's implicit resolvers for bool, int, float and timestamp, each as a small recognizer
// that also says what the scalar meant to YAML 1.1.
#include "server/yaml11_refusals.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "server/yaml_core_schema.h"

namespace gridexp::config_yaml {
namespace {

using nlohmann::json;

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

std::string without_underscores(std::string_view text) {
  std::string plain;
  for (char c : text) {
    if (c != '_') plain += c;
  }
  return plain;
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

// --- Booleans and timestamps ------------------------------------------------------------------

std::optional<Yaml11Reading> yaml11_bool_reading(std::string_view text, bool is_key) {
  constexpr std::string_view kAdviceBool = "write true/false, or quote it";
  if (is_one_of(text, {"yes", "Yes", "YES", "on", "On", "ON"}) ||
      (!is_key && is_one_of(text, {"y", "Y"}))) {
    return Yaml11Reading{"true", "", std::string(kAdviceBool)};
  }
  if (is_one_of(text, {"no", "No", "NO", "off", "Off", "OFF"}) ||
      (!is_key && is_one_of(text, {"n", "N"}))) {
    return Yaml11Reading{"false", "", std::string(kAdviceBool)};
  }
  return std::nullopt;
}

// Reads a timestamp's text from left to right; each step consumes what it matched.
struct TimestampCursor {
  std::string_view text;
  std::size_t at = 0;

  bool at_end() const { return at == text.size(); }

  bool digits(std::size_t minimum, std::size_t maximum) {
    std::size_t count = 0;
    while (at < text.size() && count < maximum && is_base_digit(text[at], 10)) ++at, ++count;
    return count >= minimum;
  }

  bool literal(char c) {
    if (at < text.size() && text[at] == c) return ++at, true;
    return false;
  }

  bool blanks() {
    std::size_t start = at;
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) ++at;
    return at > start;
  }

  // T, t or blanks, then h:mm:ss.
  bool time_of_day() {
    if (!literal('T') && !literal('t') && !blanks()) return false;
    return digits(1, 2) && literal(':') && digits(2, 2) && literal(':') && digits(2, 2);
  }

  // An optional zone (Z, +h, +hh:mm, after optional blanks) and the end of the text.
  bool zone_then_end() {
    if (at_end()) return true;
    blanks();
    if (literal('Z')) return at_end();
    if (!literal('+') && !literal('-')) return false;
    if (!digits(1, 2)) return false;
    if (literal(':') && !digits(2, 2)) return false;
    return at_end();
  }
};

// PyYAML's timestamp: yyyy-mm-dd, or yyyy-m-d then T or blanks, h:mm:ss, an optional
// fraction and an optional zone (Z, +h, +hh:mm).
bool is_yaml11_timestamp(std::string_view text) {
  TimestampCursor cursor{text};
  if (!cursor.digits(4, 4) || !cursor.literal('-')) return false;
  std::size_t month = cursor.at;
  if (cursor.digits(2, 2) && cursor.literal('-') && cursor.digits(2, 2) && cursor.at_end()) {
    return true;
  }
  cursor.at = month;
  if (!cursor.digits(1, 2) || !cursor.literal('-') || !cursor.digits(1, 2)) return false;
  if (!cursor.time_of_day()) return false;
  if (cursor.literal('.')) cursor.digits(0, text.size());
  return cursor.zone_then_end();
}

// --- Integers -----------------------------------------------------------------------------------

// 0[0-7_]+ (`body` is `text` without its sign): octal to YAML 1.1.
std::optional<Yaml11Reading> yaml11_octal_reading(std::string_view text, std::string_view body,
                                                  bool negative) {
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

// Binary, hexadecimal with a sign or underscores, octal, and decimal with underscores.
std::optional<Yaml11Reading> yaml11_integer_reading(std::string_view text) {
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
    return yaml11_octal_reading(text, body, negative);
  }
  if (body.find('_') != std::string_view::npos && is_yaml11_digits(body, 10) &&
      body.front() >= '1' && body.front() <= '9') {
    return number_reading(signed_meaning(negative, yaml11_digits_value(body, 10)), "");
  }
  return std::nullopt;
}

// --- Sexagesimal and underscored floats ---------------------------------------------------------

// :[0-5]?[0-9] without its colon.
bool is_base60_digit_pair(std::string_view part) {
  return (part.size() == 1 && is_base_digit(part[0], 10)) ||
         (part.size() == 2 && part[0] >= '0' && part[0] <= '5' && is_base_digit(part[1], 10));
}

// `value` followed by the parts of `rest`, (:[0-5]?[0-9])+, folded base 60; nullopt when
// `rest` is not that.
std::optional<double> fold_base60(double value, std::string_view rest) {
  while (!rest.empty()) {
    if (rest.front() != ':') return std::nullopt;
    std::size_t end = rest.find(':', 1);
    std::string_view part = rest.substr(1, end == std::string_view::npos ? end : end - 1);
    if (!is_base60_digit_pair(part)) return std::nullopt;
    value = value * 60 + std::stoi(std::string(part));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  }
  return value;
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
  for (char c : without_underscores(head)) value = value * 10 + (c - '0');
  return fold_base60(value, text.substr(colon));
}

std::optional<Yaml11Reading> yaml11_sexagesimal_reading(std::string_view text, bool negative) {
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
  double value = *whole + std::stod("0." + without_underscores(fraction));
  return number_reading(json(negative ? -value : value).dump(), " (base 60)");
}

// [eE][-+][0-9]+ without its [eE].
bool is_yaml11_exponent(std::string_view power) {
  return power.size() >= 2 && (power[0] == '-' || power[0] == '+') &&
         is_digits(power.substr(1), 10);
}

// [0-9][0-9_]*\.[0-9_]* or (unsigned) \.[0-9][0-9_]*
bool is_yaml11_float_mantissa(std::string_view mantissa, bool had_sign) {
  std::size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return false;
  std::string_view whole = mantissa.substr(0, dot);
  std::string_view fraction = mantissa.substr(dot + 1);
  if (whole.empty()) {
    return !had_sign && !fraction.empty() && fraction.front() != '_' &&
           is_yaml11_digits(fraction, 10);
  }
  return whole.front() != '_' && is_yaml11_digits(whole, 10) &&
         (fraction.empty() || is_yaml11_digits(fraction, 10));
}

// A float's mantissa and optional exponent with an underscore, which YAML 1.1 dropped.
std::optional<Yaml11Reading> yaml11_underscored_float_reading(std::string_view text, bool negative,
                                                              bool had_sign) {
  if (text.find('_') == std::string_view::npos) return std::nullopt;
  std::size_t exponent = text.find_first_of("eE");
  if (exponent != std::string_view::npos && !is_yaml11_exponent(text.substr(exponent + 1))) {
    return std::nullopt;
  }
  if (!is_yaml11_float_mantissa(text.substr(0, exponent), had_sign)) return std::nullopt;
  std::string plain = without_underscores(text);
  double value = 0;
  std::from_chars(plain.data(), plain.data() + plain.size(), value);
  return number_reading(json(negative ? -value : value).dump(), "");
}

}  // namespace

std::optional<Yaml11Reading> yaml11_only_reading(std::string_view text, bool is_key) {
  if (std::optional<Yaml11Reading> reading = yaml11_bool_reading(text, is_key)) return reading;
  if (is_yaml11_timestamp(text)) {
    bool date_only = text.size() == 10;
    return Yaml11Reading{date_only ? "a date" : "a date and time", "", "quote it"};
  }
  // An integer YAML 1.1 and 1.2 agree on has neither '_' nor ':', so it matches nothing below.
  if (std::optional<Yaml11Reading> reading = yaml11_integer_reading(text)) return reading;
  bool had_sign = text.starts_with('+') || text.starts_with('-');
  bool negative = text.starts_with('-');
  std::string_view body = without_sign(text);
  if (body.find(':') != std::string_view::npos) return yaml11_sexagesimal_reading(body, negative);
  return yaml11_underscored_float_reading(body, negative, had_sign);
}

std::string yaml11_difference(const std::string& text, const Yaml11Reading& reading) {
  std::string yaml12 = "the string \"" + text + "\"";
  if (core_type_of(text) == CoreType::kInt) {
    if (std::optional<json> value = core_int_value(text)) yaml12 = value->dump();
  }
  return "'" + text + "' means " + reading.meaning + " in YAML 1.1" + reading.note + " and " +
         yaml12 + " in YAML 1.2; " + reading.advice;
}

}  // namespace gridexp::config_yaml
