// config.yaml's bytes -> one yaml-cpp document, within the limits config.h states: at most
// kMaxConfigBytes of text, one document, kMaxParsedNodes nodes. yaml-cpp throws; nothing leaves
// here but Status values naming file:line:column. Private to the config parser (config.cpp).
// Pure functions; safe from any thread.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <yaml-cpp/yaml.h>

#include "common/status.h"

namespace gridexp::config_yaml {

// The file's bytes, reading at most one byte more than a config may have: parse_config refuses
// that before parsing, and a huge file (or a pipe that never ends) is not read into memory. A
// missing or unreadable file is an error naming the path.
Result<std::string> read_config_file(const std::filesystem::path& path);

// The stream's only document, not empty (an empty or null document is an error).
Result<YAML::Node> load_single_document(std::string_view yaml_text, const std::string& source_name);

}  // namespace gridexp::config_yaml
