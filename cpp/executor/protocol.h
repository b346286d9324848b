// The messages between the supervisor and gridexp-executor (docs/executor.md, "Messages"):
// commands parsed from JSON lines into typed values, and the events built as JSON objects.
//
// Plain functions over values; safe from any thread. Nothing here touches Python.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/clock.h"

namespace gridexp {

struct StartCommand {
  nlohmann::json config;  // a JSON object, handed to init_dataset
  bool consistent_dataset = true;
  bool save_models = false;
  std::string model_dir;  // non-empty when save_models
};

struct RunCommand {
  // {"id", "attempt", "experiment", "hyperparameters"}, as gridexp.trial() returns it.
  nlohmann::json trial;
  std::string trial_id;  // trial["id"]: non-empty, usable as a file name
};

struct StopCommand {
  std::string trial_id;
};

// The command pipe reached its end: finish the trial in hand, then exit 0.
struct EndOfCommands {};

// A line that is not a valid command, or a failed read; the executor treats it as fatal.
struct ProtocolError {
  std::string message;
};

using Command = std::variant<StartCommand, RunCommand, StopCommand, EndOfCommands, ProtocolError>;

// Parses one line (without its '\n'). Never throws: a bad line gives a ProtocolError.
Command parse_command(std::string_view line);

// Where a fatal error sits in the user's code, when known.
struct CodeLocation {
  std::optional<std::string> file;  // relative to the working directory when inside it
  std::optional<int> line;
};

nlohmann::json ready_event();
// A traceback is "" when no Python exception caused the error.
nlohmann::json fatal_event(const std::string& error, const CodeLocation& location,
                           const std::string& traceback);
nlohmann::json metrics_event(const std::string& trial_id, std::optional<std::int64_t> step,
                             TimeMs time_ms, nlohmann::json values);
nlohmann::json result_event(const std::string& trial_id, nlohmann::json results,
                            const std::optional<std::string>& model_path);
nlohmann::json failed_event(const std::string& trial_id, const std::string& error,
                            const std::string& traceback);

}  // namespace gridexp
