// Parsing the supervisor's commands and building the executor's events (docs/executor.md).
#include "executor/protocol.h"

#include <utility>

#include "common/json_parse.h"

namespace gridexp {
namespace {

using nlohmann::json;

// A trial id becomes the model's file name, <model_dir>/<id>.pt.
bool is_usable_as_file_name(const std::string& id) {
  return !id.empty() && id != "." && id != ".." && id.find('/') == std::string::npos &&
         id.find('\0') == std::string::npos;
}

Command parse_start(const json& message) {
  StartCommand start;
  auto config = message.find("config");
  if (config == message.end() || !config->is_object()) {
    return ProtocolError{"start: \"config\" must be an object"};
  }
  start.config = *config;
  auto consistent_dataset = message.find("consistent_dataset");
  auto save_models = message.find("save_models");
  if (consistent_dataset == message.end() || !consistent_dataset->is_boolean() ||
      save_models == message.end() || !save_models->is_boolean()) {
    return ProtocolError{"start: \"consistent_dataset\" and \"save_models\" must be booleans"};
  }
  start.consistent_dataset = consistent_dataset->get<bool>();
  start.save_models = save_models->get<bool>();
  if (start.save_models) {
    auto model_dir = message.find("model_dir");
    if (model_dir == message.end() || !model_dir->is_string() ||
        model_dir->get<std::string>().empty()) {
      return ProtocolError{"start: \"model_dir\" must be a directory when \"save_models\" is true"};
    }
    start.model_dir = model_dir->get<std::string>();
  }
  return start;
}

Command parse_run(const json& message) {
  auto trial = message.find("trial");
  if (trial == message.end() || !trial->is_object()) {
    return ProtocolError{"run: \"trial\" must be an object"};
  }
  auto id = trial->find("id");
  if (id == trial->end() || !id->is_string() || !is_usable_as_file_name(id->get<std::string>())) {
    return ProtocolError{"run: \"trial.id\" must be a non-empty string usable as a file name"};
  }
  auto hyperparameters = trial->find("hyperparameters");
  if (hyperparameters == trial->end() || !hyperparameters->is_object()) {
    return ProtocolError{"run: \"trial.hyperparameters\" must be an object"};
  }
  return RunCommand{*trial, id->get<std::string>()};
}

Command parse_stop(const json& message) {
  auto trial_id = message.find("trial_id");
  if (trial_id == message.end() || !trial_id->is_string()) {
    return ProtocolError{"stop: \"trial_id\" must be a string"};
  }
  return StopCommand{trial_id->get<std::string>()};
}

}  // namespace

Command parse_command(std::string_view line) {
  // Depth-limited (a config nests at most 128 deep, plus the command's own levels): copying a
  // JSON value recurses once per level, and a line 100,000 brackets deep overflowed the stack.
  Result<json> parsed = parse_json(line, kMaxMessageJsonDepth);
  json message = parsed ? std::move(parsed).value() : json();
  if (!message.is_object()) {
    return ProtocolError{"a command is not a JSON object: " + std::string(line.substr(0, 200))};
  }
  auto type = message.find("type");
  if (type == message.end() || !type->is_string()) {
    return ProtocolError{"a command has no \"type\""};
  }
  const std::string& name = type->get_ref<const std::string&>();
  if (name == "start") return parse_start(message);
  if (name == "run") return parse_run(message);
  if (name == "stop") return parse_stop(message);
  return ProtocolError{"unknown command type \"" + name + "\""};
}

json ready_event() { return {{"type", "ready"}}; }

json fatal_event(const std::string& error, const CodeLocation& location,
                 const std::string& traceback) {
  return {{"type", "fatal"},
          {"error", error},
          {"file", location.file ? json(*location.file) : json(nullptr)},
          {"line", location.line ? json(*location.line) : json(nullptr)},
          {"traceback", traceback}};
}

json metrics_event(const std::string& trial_id, std::optional<std::int64_t> step, TimeMs time_ms,
                   json values) {
  return {{"type", "metrics"},
          {"trial_id", trial_id},
          {"step", step ? json(*step) : json(nullptr)},
          {"time_ms", time_ms},
          {"values", std::move(values)}};
}

json result_event(const std::string& trial_id, json results,
                  const std::optional<std::string>& model_path) {
  return {{"type", "result"},
          {"trial_id", trial_id},
          {"results", std::move(results)},
          {"model_path", model_path ? json(*model_path) : json(nullptr)}};
}

json failed_event(const std::string& trial_id, const std::string& error,
                  const std::string& traceback) {
  return {{"type", "failed"}, {"trial_id", trial_id}, {"error", error}, {"traceback", traceback}};
}

}  // namespace gridexp
