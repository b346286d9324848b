// The messages between gridexp-worker's supervisor and gridexp-executor (docs/executor.md,
// "Messages"), typed, for both sides: commands (supervisor -> executor) and events
// (executor -> supervisor), each one JSON object on one '\n'-terminated line.
//
// encode_*() gives the line, '\n' included; decode_*() takes one line without its '\n' and
// checks every field the receiving side relies on, so a well-formed value is all a receiver
// ever sees. Decoding never throws: a bad line is Status::invalid_argument saying what is
// wrong. LineFramer splits a byte stream into those lines.
//
// Plain functions over values, safe from any thread; a LineFramer belongs to one reader.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"

namespace gridexp {

// The environment variable that tells an executor its GPU is shared with other executors
// ("1": shared; unset or anything else: not shared). The worker sets it when it runs more
// than one executor per GPU (--trials-per-gpu above 1).
inline constexpr const char* kSharedGpuEnvironmentVariable = "GRIDEXP_SHARED_GPU";

// --- Supervisor -> executor ---

struct StartCommand {
  nlohmann::json config;  // a JSON object, handed to init_dataset
  bool consistent_dataset = true;
  bool save_models = false;
  std::string model_dir;  // non-empty when save_models
};

// What a checkpoint file holds (docs/executor.md, "Checkpoints"): a torch.save file of a
// Python object, a user's file as it was, or a zip of a directory's contents.
enum class CheckpointKind { kObject, kFile, kDirectory };

// "object", "file", "directory": the spelling on the wire and in HTTP headers.
const char* checkpoint_kind_name(CheckpointKind kind);
std::optional<CheckpointKind> checkpoint_kind_from_name(std::string_view name);

// The checkpoint a trial resumes from, as the executor finds it on disk.
struct CheckpointRef {
  std::string path;  // absolute; for kDirectory the unpacked directory (the checkpoint_dir)
  CheckpointKind kind = CheckpointKind::kObject;
  std::optional<std::int64_t> step;
};

struct RunCommand {
  // {"id", "attempt", "experiment", "hyperparameters"}, as gridexp.trial() returns it.
  nlohmann::json trial;
  std::string trial_id;  // trial["id"]: non-empty, usable as a file name
  // The latest checkpoint of an earlier attempt ("checkpoint": absent or null when none).
  std::optional<CheckpointRef> checkpoint = std::nullopt;
  // gridexp.checkpoint_dir(): an absolute directory of the trial's own ("" when none was
  // given); saved checkpoints are staged in its parent directory (docs/executor.md).
  std::string checkpoint_dir = "";
};

// Why the supervisor asks a trial to stop (gridexp.stop_reason()).
enum class StopReason { kCancelled, kPreempted, kLeaseLost };

// "cancelled", "preempted", "lease lost".
const char* stop_reason_name(StopReason reason);

struct StopCommand {
  std::string trial_id;
  std::optional<StopReason> reason = std::nullopt;  // absent on the wire: not said
};

using ExecutorCommand = std::variant<StartCommand, RunCommand, StopCommand>;

// A RunCommand for `trial` (whose "id" it copies into trial_id).
RunCommand run_command(nlohmann::json trial);

std::string encode_command(const ExecutorCommand& command);
Result<ExecutorCommand> decode_command(std::string_view line);

// --- Executor -> supervisor ---

// Where a fatal error sits in the user's code, when known.
struct CodeLocation {
  std::optional<std::string> file;  // relative to the working directory when inside it
  std::optional<int> line;
};

struct ReadyEvent {};

struct FatalEvent {
  std::string error;
  CodeLocation location;
  std::string traceback;  // "" when no Python exception caused the error
};

struct MetricsEvent {
  std::string trial_id;
  std::optional<std::int64_t> step;
  TimeMs time_ms = 0;
  nlohmann::json values;  // an object
};

struct ResultEvent {
  std::string trial_id;
  nlohmann::json results;
  std::optional<std::string> model_path;
  // The trial's peak GPU memory (torch.cuda.max_memory_allocated, the highest over the visible
  // devices); empty when the trial used no GPU. Optional on the wire ("peak_gpu_memory_bytes").
  std::optional<std::int64_t> peak_gpu_memory_bytes = std::nullopt;
  // run_one returned after gridexp.should_stop() had returned True to it: it stopped early.
  // Optional on the wire ("stop_observed": true; absent means false).
  bool stop_observed = false;
};

// save_checkpoint wrote `path` completely (temp name, then rename); from now on the supervisor
// owns the file: it uploads it, then deletes it.
struct CheckpointEvent {
  std::string trial_id;
  std::string path;  // absolute
  CheckpointKind kind = CheckpointKind::kObject;
  std::optional<std::int64_t> step;
};

struct FailedEvent {
  std::string trial_id;
  std::string error;
  std::string traceback;
  std::optional<std::int64_t> peak_gpu_memory_bytes = std::nullopt;  // as in ResultEvent
  // The trial raised CUDA out-of-memory (torch.OutOfMemoryError, or a RuntimeError saying
  // "CUDA out of memory"). Optional on the wire ("out_of_memory": true; absent means false).
  bool out_of_memory = false;
};

using ExecutorEvent =
    std::variant<ReadyEvent, FatalEvent, MetricsEvent, ResultEvent, FailedEvent, CheckpointEvent>;

std::string encode_event(const ExecutorEvent& event);
Result<ExecutorEvent> decode_event(std::string_view line);

// --- Framing ---

// Splits bytes into lines. feed() hands each complete line (without its '\n') to `on_line`
// and keeps the unterminated rest for the next feed(); finish() hands out that rest, if any,
// at the end of the stream. Lines of only blanks are handed out too (receivers decide).
class LineFramer {
 public:
  using LineHandler = std::function<void(std::string_view line)>;

  void feed(std::string_view bytes, const LineHandler& on_line);
  void finish(const LineHandler& on_line);
  // Bytes received but not yet handed out as a line.
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string pending_;
};

}  // namespace gridexp
