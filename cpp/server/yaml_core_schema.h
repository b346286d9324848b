// The YAML 1.2 core schema's tag resolution for plain scalars
// (https://yaml.org/spec/1.2.2/#1032-tag-resolution): yaml-cpp leaves every scalar as text,
// and these say which type a plain scalar is and what value it has. Private to the config
// parser (config_values.cpp, yaml11_refusals.cpp). Pure functions; safe from any thread.
#pragma once

#include <initializer_list>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace gridexp::config_yaml {

enum class CoreType { kNull, kBool, kInt, kFloat, kString };

bool is_one_of(std::string_view text, std::initializer_list<std::string_view> spellings);

// `text` without one leading '+' or '-'.
std::string_view without_sign(std::string_view text);

// At least one digit of `base` (8, 10 or 16), nothing else.
bool is_digits(std::string_view text, int base);

bool is_core_int(std::string_view text);
bool is_core_infinity(std::string_view text);
bool is_core_nan(std::string_view text);

CoreType core_type_of(std::string_view text);

// The value of text already known to match its type's pattern; nullopt means out of range.
// An int is int64, else uint64, else (decimal only) a float: nlohmann's own JSON parser reads
// integers beyond 64 bits the same way, so the value means the same once it is JSON text.
std::optional<nlohmann::json> core_float_value(std::string_view text);
std::optional<nlohmann::json> core_int_value(std::string_view text);

}  // namespace gridexp::config_yaml
