// Plain scalars that YAML 1.1 (PyYAML, the seed's reader) reads differently from YAML 1.2.
//
// A plain scalar that YAML 1.1 resolves to a bool, a number or a date that YAML 1.2 reads
// differently would silently change meaning (`no` becomes a truthy string), so the config
// parser refuses it with the message yaml11_difference() writes. The patterns are PyYAML's
// resolvers (and the 1.1 spec's y/n booleans). Scalars PyYAML left as strings that YAML 1.2
// reads as numbers (`1e-3`, `-.5`, `0o17`, `08`) are kept: the number is what was meant.
// Private to the config parser. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gridexp::config_yaml {

// What YAML 1.1 made of a plain scalar whose YAML 1.2 reading differs.
struct Yaml11Reading {
  std::string meaning;  // "true", "90", "a date"
  std::string note;     // how YAML 1.1 read it: " (octal)", or empty
  std::string advice;   // what to write instead
};

// How YAML 1.1 reads plain `text` when that differs from YAML 1.2's reading; nullopt when
// the two agree. A key named y or n is text to PyYAML too, and common: it is let through.
std::optional<Yaml11Reading> yaml11_only_reading(std::string_view text, bool is_key);

// "'010' means 8 in YAML 1.1 (octal) and 10 in YAML 1.2; write 8 or 10, or quote it".
std::string yaml11_difference(const std::string& text, const Yaml11Reading& reading);

}  // namespace gridexp::config_yaml
