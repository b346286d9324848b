// Command-line splitting shared by gridexp-server and gridexp-worker.
//
// Accepts `--name=value`, `--name value` (only for names `takes_value` accepts), bare
// `--flag`, `-h`, and positional arguments. Option names are normalized to snake_case
// (`--lease-seconds` and `--lease_seconds` are both "lease_seconds"); `spelling` keeps what
// the user typed, for error messages. Pure function.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace gridexp {

struct CommandLineItem {
  std::string name;                  // normalized option name; empty for a positional argument
  std::string spelling;              // as typed, without any "=value"
  std::optional<std::string> value;  // the option's value, or the positional argument itself
};

Result<std::vector<CommandLineItem>> split_command_line(
    const std::vector<std::string>& arguments,
    const std::function<bool(const std::string& name)>& takes_value);

}  // namespace gridexp
