// What the executor's command reader hands its main loop: a command (the typed messages of
// common/executor_protocol.h), the end of the command pipe, or a protocol error.
//
// Plain functions over values; safe from any thread. Nothing here touches Python.
#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/executor_protocol.h"

namespace gridexp {

// The command pipe reached its end: finish the trial in hand, then exit 0.
struct EndOfCommands {};

// A line that is not a valid command, or a failed read; the executor treats it as fatal.
struct ProtocolError {
  std::string message;
};

using Command = std::variant<StartCommand, RunCommand, StopCommand, EndOfCommands, ProtocolError>;

// Parses one line (without its '\n'). Never throws: a bad line gives a ProtocolError.
Command parse_command(std::string_view line);

}  // namespace gridexp
