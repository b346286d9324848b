// Encoding, decoding and framing of the supervisor <-> executor messages (docs/executor.md).
#include "common/executor_protocol.h"

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

std::string dump_line(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + '\n';
}

template <typename T>
json nullable(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

// Reads the fields of one message, keeping the first complaint: "<type>: "<key>" must be ...".
class Fields {
 public:
  Fields(const json& message, std::string type) : message_(message), type_(std::move(type)) {}

  const json* find(const char* key, bool (json::*is_kind)() const, const char* kind) {
    auto found = message_.find(key);
    if (found != message_.end() && ((*found).*is_kind)()) return &*found;
    complain(key, kind);
    return nullptr;
  }
  std::string string(const char* key) {
    const json* found = find(key, &json::is_string, "a string");
    return found ? found->get<std::string>() : std::string();
  }
  // Absent or null: nullopt, without complaint.
  template <typename T>
  std::optional<T> nullable(const char* key, bool (json::*is_kind)() const, const char* kind) {
    auto found = message_.find(key);
    if (found == message_.end() || found->is_null()) return std::nullopt;
    if (((*found).*is_kind)()) return found->get<T>();
    complain(key, kind);
    return std::nullopt;
  }
  void complain(const char* key, const char* kind) {
    if (status_) status_ = Status::invalid_argument(type_ + ": \"" + key + "\" must be " + kind);
  }
  void complain(std::string message) {
    if (status_) status_ = Status::invalid_argument(type_ + ": " + std::move(message));
  }
  // Keeps `status` when it is the first complaint (from the Fields of a nested object).
  void adopt(const Status& status) {
    if (status_ && !status) status_ = status;
  }
  const Status& status() const { return status_; }

 private:
  const json& message_;
  std::string type_;
  Status status_;
};

template <typename Message, typename Variant>
Result<Variant> checked(Message message, const Fields& fields) {
  if (!fields.status()) return fields.status();
  return Variant(std::move(message));
}

Result<ExecutorCommand> decode_start(const json& message) {
  Fields fields(message, "start");
  StartCommand start;
  if (const json* config = fields.find("config", &json::is_object, "an object")) {
    start.config = *config;
  }
  const json* consistent = fields.find("consistent_dataset", &json::is_boolean, "a boolean");
  const json* save = fields.find("save_models", &json::is_boolean, "a boolean");
  start.consistent_dataset = consistent && consistent->get<bool>();
  start.save_models = save && save->get<bool>();
  start.model_dir =
      fields.nullable<std::string>("model_dir", &json::is_string, "a string").value_or("");
  if (start.save_models && start.model_dir.empty()) {
    fields.complain("\"model_dir\" must be a directory when \"save_models\" is true");
  }
  return checked<StartCommand, ExecutorCommand>(std::move(start), fields);
}

// "kind": one of checkpoint_kind_name()'s spellings.
CheckpointKind checkpoint_kind(Fields& fields, const json& message) {
  auto kind = message.find("kind");
  std::optional<CheckpointKind> known;
  if (kind != message.end() && kind->is_string()) {
    known = checkpoint_kind_from_name(kind->get<std::string>());
  }
  if (!known) fields.complain("kind", "\"object\", \"file\" or \"directory\"");
  return known.value_or(CheckpointKind::kObject);
}

bool is_absolute_path(const std::string& path) { return !path.empty() && path.front() == '/'; }

// "checkpoint": absent or null, or {"path", "kind", "step"}.
std::optional<CheckpointRef> decode_checkpoint_ref(Fields& fields, const json& message) {
  auto found = message.find("checkpoint");
  if (found == message.end() || found->is_null()) return std::nullopt;
  if (!found->is_object()) {
    fields.complain("checkpoint", "an object or null");
    return std::nullopt;
  }
  Fields inner(*found, "run: checkpoint");
  CheckpointRef checkpoint;
  checkpoint.path = inner.string("path");
  checkpoint.kind = checkpoint_kind(inner, *found);
  checkpoint.step = inner.nullable<std::int64_t>("step", &json::is_number_integer, "an integer");
  if (inner.status() && !is_absolute_path(checkpoint.path)) {
    inner.complain("path", "an absolute path");
  }
  fields.adopt(inner.status());
  return checkpoint;
}

Result<ExecutorCommand> decode_run(const json& message) {
  Fields fields(message, "run");
  const json* trial = fields.find("trial", &json::is_object, "an object");
  if (trial == nullptr) return fields.status();
  auto id = trial->find("id");
  if (id == trial->end() || !id->is_string() || !is_usable_as_file_name(id->get<std::string>())) {
    fields.complain("\"trial.id\" must be a non-empty string usable as a file name");
  }
  auto hyperparameters = trial->find("hyperparameters");
  if (hyperparameters == trial->end() || !hyperparameters->is_object()) {
    fields.complain("\"trial.hyperparameters\" must be an object");
  }
  if (!fields.status()) return fields.status();
  RunCommand run = run_command(*trial);
  run.checkpoint = decode_checkpoint_ref(fields, message);
  run.checkpoint_dir =
      fields.nullable<std::string>("checkpoint_dir", &json::is_string, "a string").value_or("");
  if (!run.checkpoint_dir.empty() && !is_absolute_path(run.checkpoint_dir)) {
    fields.complain("checkpoint_dir", "an absolute path");
  }
  return checked<RunCommand, ExecutorCommand>(std::move(run), fields);
}

Result<ExecutorCommand> decode_stop(const json& message) {
  Fields fields(message, "stop");
  StopCommand stop{fields.string("trial_id")};
  std::optional<std::string> reason =
      fields.nullable<std::string>("reason", &json::is_string, "a string");
  if (reason) {
    for (StopReason known :
         {StopReason::kCancelled, StopReason::kPreempted, StopReason::kLeaseLost}) {
      if (*reason == stop_reason_name(known)) stop.reason = known;
    }
    if (!stop.reason) {
      fields.complain("reason", "\"cancelled\", \"preempted\" or \"lease lost\"");
    }
  }
  return checked<StopCommand, ExecutorCommand>(std::move(stop), fields);
}

Result<ExecutorEvent> decode_fatal(const json& message) {
  Fields fields(message, "fatal");
  FatalEvent fatal;
  fatal.error = fields.string("error");
  fatal.location.file = fields.nullable<std::string>("file", &json::is_string, "a string");
  fatal.location.line = fields.nullable<int>("line", &json::is_number_integer, "an integer");
  fatal.traceback = fields.string("traceback");
  return checked<FatalEvent, ExecutorEvent>(std::move(fatal), fields);
}

Result<ExecutorEvent> decode_metrics(const json& message) {
  Fields fields(message, "metrics");
  MetricsEvent metrics;
  metrics.trial_id = fields.string("trial_id");
  metrics.step = fields.nullable<std::int64_t>("step", &json::is_number_integer, "an integer");
  if (const json* time = fields.find("time_ms", &json::is_number_integer, "an integer")) {
    metrics.time_ms = time->get<TimeMs>();
  }
  if (const json* values = fields.find("values", &json::is_object, "an object")) {
    metrics.values = *values;
  }
  return checked<MetricsEvent, ExecutorEvent>(std::move(metrics), fields);
}

// "peak_gpu_memory_bytes": absent or null, or a count of bytes.
std::optional<std::int64_t> peak_gpu_memory(Fields& fields) {
  std::optional<std::int64_t> bytes = fields.nullable<std::int64_t>(
      "peak_gpu_memory_bytes", &json::is_number_integer, "a non-negative integer");
  if (bytes && *bytes < 0) fields.complain("peak_gpu_memory_bytes", "a non-negative integer");
  return bytes;
}

Result<ExecutorEvent> decode_result(const json& message) {
  Fields fields(message, "result");
  ResultEvent result;
  result.trial_id = fields.string("trial_id");
  auto results = message.find("results");
  if (results == message.end()) fields.complain("\"results\" is missing");
  if (results != message.end()) result.results = *results;
  result.model_path = fields.nullable<std::string>("model_path", &json::is_string, "a string");
  result.peak_gpu_memory_bytes = peak_gpu_memory(fields);
  result.stop_observed =
      fields.nullable<bool>("stop_observed", &json::is_boolean, "a boolean").value_or(false);
  return checked<ResultEvent, ExecutorEvent>(std::move(result), fields);
}

Result<ExecutorEvent> decode_checkpoint(const json& message) {
  Fields fields(message, "checkpoint");
  CheckpointEvent checkpoint;
  checkpoint.trial_id = fields.string("trial_id");
  checkpoint.path = fields.string("path");
  checkpoint.kind = checkpoint_kind(fields, message);
  checkpoint.step = fields.nullable<std::int64_t>("step", &json::is_number_integer, "an integer");
  if (fields.status() && !is_absolute_path(checkpoint.path)) {
    fields.complain("path", "an absolute path");
  }
  return checked<CheckpointEvent, ExecutorEvent>(std::move(checkpoint), fields);
}

Result<ExecutorEvent> decode_failed(const json& message) {
  Fields fields(message, "failed");
  FailedEvent failed;
  failed.trial_id = fields.string("trial_id");
  failed.error = fields.string("error");
  failed.traceback = fields.string("traceback");
  failed.peak_gpu_memory_bytes = peak_gpu_memory(fields);
  failed.out_of_memory =
      fields.nullable<bool>("out_of_memory", &json::is_boolean, "a boolean").value_or(false);
  return checked<FailedEvent, ExecutorEvent>(std::move(failed), fields);
}

// The message's object and its "type", or why the line is not a message.
Result<std::pair<json, std::string>> parse_message(std::string_view line, const char* what) {
  // Depth-limited (a config nests at most 128 deep, plus the message's own levels): copying a
  // JSON value recurses once per level, and a line 100,000 brackets deep overflowed the stack.
  Result<json> parsed = parse_json(line, kMaxMessageJsonDepth);
  if (!parsed || !parsed->is_object()) {
    return Status::invalid_argument(std::string("a ") + what +
                                    " is not a JSON object: " + std::string(line.substr(0, 200)));
  }
  auto type = parsed->find("type");
  if (type == parsed->end() || !type->is_string()) {
    return Status::invalid_argument(std::string("a ") + what + " has no \"type\"");
  }
  std::string name = type->get<std::string>();
  return std::make_pair(std::move(parsed).value(), std::move(name));
}

struct CommandEncoder {
  json operator()(const StartCommand& start) const {
    return {{"type", "start"},
            {"config", start.config},
            {"consistent_dataset", start.consistent_dataset},
            {"save_models", start.save_models},
            {"model_dir", start.model_dir}};
  }
  json operator()(const RunCommand& run) const {
    json message = {{"type", "run"}, {"trial", run.trial}, {"checkpoint", nullptr}};
    if (run.checkpoint) {
      message["checkpoint"] = {{"path", run.checkpoint->path},
                               {"kind", checkpoint_kind_name(run.checkpoint->kind)},
                               {"step", nullable(run.checkpoint->step)}};
    }
    if (!run.checkpoint_dir.empty()) message["checkpoint_dir"] = run.checkpoint_dir;
    return message;
  }
  json operator()(const StopCommand& stop) const {
    json message = {{"type", "stop"}, {"trial_id", stop.trial_id}};
    if (stop.reason) message["reason"] = stop_reason_name(*stop.reason);
    return message;
  }
};

struct EventEncoder {
  json operator()(const ReadyEvent&) const { return {{"type", "ready"}}; }
  json operator()(const FatalEvent& fatal) const {
    return {{"type", "fatal"},
            {"error", fatal.error},
            {"file", nullable(fatal.location.file)},
            {"line", nullable(fatal.location.line)},
            {"traceback", fatal.traceback}};
  }
  json operator()(const MetricsEvent& metrics) const {
    return {{"type", "metrics"},
            {"trial_id", metrics.trial_id},
            {"step", nullable(metrics.step)},
            {"time_ms", metrics.time_ms},
            {"values", metrics.values}};
  }
  json operator()(const ResultEvent& result) const {
    return {{"type", "result"},
            {"trial_id", result.trial_id},
            {"results", result.results},
            {"model_path", nullable(result.model_path)}};
  }
  json operator()(const CheckpointEvent& checkpoint) const {
    return {{"type", "checkpoint"},
            {"trial_id", checkpoint.trial_id},
            {"path", checkpoint.path},
            {"kind", checkpoint_kind_name(checkpoint.kind)},
            {"step", nullable(checkpoint.step)}};
  }
  json operator()(const FailedEvent& failed) const {
    return {{"type", "failed"},
            {"trial_id", failed.trial_id},
            {"error", failed.error},
            {"traceback", failed.traceback}};
  }
};

// The optional fields are left out when empty.
json with_peak_gpu_memory(json message, std::optional<std::int64_t> bytes) {
  if (bytes) message["peak_gpu_memory_bytes"] = *bytes;
  return message;
}

}  // namespace

const char* checkpoint_kind_name(CheckpointKind kind) {
  switch (kind) {
    case CheckpointKind::kObject:
      return "object";
    case CheckpointKind::kFile:
      return "file";
    case CheckpointKind::kDirectory:
      return "directory";
  }
  return "object";
}

std::optional<CheckpointKind> checkpoint_kind_from_name(std::string_view name) {
  for (CheckpointKind kind :
       {CheckpointKind::kObject, CheckpointKind::kFile, CheckpointKind::kDirectory}) {
    if (name == checkpoint_kind_name(kind)) return kind;
  }
  return std::nullopt;
}

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kCancelled:
      return "cancelled";
    case StopReason::kPreempted:
      return "preempted";
    case StopReason::kLeaseLost:
      return "lease lost";
  }
  return "cancelled";
}

RunCommand run_command(json trial) {
  std::string id = trial.is_object() ? trial.value("id", std::string()) : std::string();
  return RunCommand{std::move(trial), std::move(id)};
}

std::string encode_command(const ExecutorCommand& command) {
  return dump_line(std::visit(CommandEncoder{}, command));
}

Result<ExecutorCommand> decode_command(std::string_view line) {
  auto message = parse_message(line, "command");
  if (!message) return message.status();
  const auto& [object, type] = *message;
  if (type == "start") return decode_start(object);
  if (type == "run") return decode_run(object);
  if (type == "stop") return decode_stop(object);
  return Status::invalid_argument("unknown command type \"" + type + "\"");
}

std::string encode_event(const ExecutorEvent& event) {
  json message = std::visit(EventEncoder{}, event);
  if (const auto* result = std::get_if<ResultEvent>(&event)) {
    message = with_peak_gpu_memory(std::move(message), result->peak_gpu_memory_bytes);
    if (result->stop_observed) message["stop_observed"] = true;
  } else if (const auto* failed = std::get_if<FailedEvent>(&event)) {
    message = with_peak_gpu_memory(std::move(message), failed->peak_gpu_memory_bytes);
    if (failed->out_of_memory) message["out_of_memory"] = true;
  }
  return dump_line(message);
}

Result<ExecutorEvent> decode_event(std::string_view line) {
  auto message = parse_message(line, "event");
  if (!message) return message.status();
  const auto& [object, type] = *message;
  if (type == "ready") return ExecutorEvent(ReadyEvent{});
  if (type == "fatal") return decode_fatal(object);
  if (type == "metrics") return decode_metrics(object);
  if (type == "result") return decode_result(object);
  if (type == "failed") return decode_failed(object);
  if (type == "checkpoint") return decode_checkpoint(object);
  return Status::invalid_argument("unknown event type \"" + type + "\"");
}

void LineFramer::feed(std::string_view bytes, const LineHandler& on_line) {
  pending_.append(bytes);
  std::size_t start = 0;
  for (std::size_t end; (end = pending_.find('\n', start)) != std::string::npos; start = end + 1) {
    on_line(std::string_view(pending_).substr(start, end - start));
  }
  pending_.erase(0, start);
}

void LineFramer::finish(const LineHandler& on_line) {
  if (pending_.empty()) return;
  std::string last = std::move(pending_);
  pending_.clear();
  on_line(last);
}

}  // namespace gridexp
