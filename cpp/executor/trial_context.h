// TrialContext: the trial in hand, as the user's code sees it through the `_gridexp_executor`
// module (which python/gridexp wraps as gridexp.report, gridexp.trial, gridexp.should_stop,
// gridexp.stop_reason and the checkpoint functions: save_checkpoint, load_checkpoint,
// checkpoint_dir).
//
// Threads: begin_trial/end_trial run on the thread that runs trials, with the GIL held;
// request_stop comes from the command reader thread, without the GIL; the module's functions
// run on any Python thread (so with the GIL held). report() converts the values at once and
// queues the event with the EventSink, never waiting on the supervisor.
//
// The module serves the context install() names. Outside a trial, or with none installed,
// trial() is None, should_stop() False and report() is ignored with a RuntimeWarning; it is
// also ignored in a process forked from the executor (multiprocessing "fork"), which has no
// event writer thread.
//
// Checkpoints: the context hands the run command's checkpoint (the one to resume from) and
// checkpoint_dir to the module, names the staging directory (checkpoint_dir's parent, where
// python/gridexp writes a checkpoint under a temporary name and renames it) and posts the
// checkpoint event once a file is complete. It records whether should_stop() returned True to
// the user's code during the trial (stop_observed), for the trial's result event.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <pybind11/pybind11.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/executor_protocol.h"
#include "common/status.h"
#include "executor/event_writer.h"

namespace gridexp {

class TrialContext {
 public:
  TrialContext(EventSink& events, const Clock& clock);

  // Makes `context` the one the `_gridexp_executor` module serves (nullptr: none). GIL held.
  static void install(TrialContext* context);

  // The trial starts: gridexp.trial() returns `trial` (its "id" a string), and should_stop()
  // is true when a stop for it came already. `checkpoint` is the one it resumes from, and
  // `checkpoint_dir` ("" when none) its checkpoint directory. GIL held.
  void begin_trial(const nlohmann::json& trial,
                   std::optional<CheckpointRef> checkpoint = std::nullopt,
                   std::string checkpoint_dir = "");
  // The trial ended: no trial, stop flag cleared. GIL held.
  void end_trial();

  // The supervisor asked trial `trial_id` to stop (for `reason`, when said): the trial in
  // hand, or the next to begin.
  void request_stop(const std::string& trial_id, std::optional<StopReason> reason = std::nullopt);
  bool should_stop() const { return stop_requested_.load(); }
  // gridexp.should_stop() as the user's code calls it: notes that it saw a True.
  bool should_stop_observed();
  // Whether should_stop_observed() returned True since the trial began.
  bool stop_observed() const { return stop_observed_.load(); }
  // Why the trial in hand was asked to stop, when it was and the supervisor said why.
  std::optional<StopReason> stop_reason();

  // gridexp's checkpoint functions. GIL held.
  // The checkpoint to resume from, {"path", "kind", "step"}, or None.
  pybind11::object checkpoint() const;
  // The trial's checkpoint directory, or None (outside a trial, or none given).
  pybind11::object checkpoint_dir() const;
  // Where a checkpoint is written before the event (checkpoint_dir's parent), or None.
  pybind11::object staging_dir() const;
  // Posts the checkpoint event for the complete file `path` (inside staging_dir()).
  // kInvalidArgument when `kind` is no checkpoint kind or `path` lies elsewhere.
  // Requires has_trial() and !in_forked_process().
  Status checkpoint_saved(const std::string& path, const std::string& kind,
                          std::optional<std::int64_t> step);

  // gridexp.trial(): the trial dict, or None. GIL held.
  pybind11::object trial() const;
  // gridexp.report(): queues a metrics event for the trial in hand. kInvalidArgument when
  // `values` cannot become JSON. Requires has_trial() and !in_forked_process(). GIL held.
  Status report(std::optional<std::int64_t> step, pybind11::handle values);
  bool has_trial() const { return trial_.has_value(); }
  bool in_forked_process() const;

 private:
  EventSink& events_;
  const Clock& clock_;
  const pid_t owner_pid_;
  std::optional<nlohmann::json> trial_;      // guarded by the GIL
  std::string trial_id_;                     // guarded by the GIL
  std::optional<CheckpointRef> checkpoint_;  // guarded by the GIL
  std::string checkpoint_dir_;               // guarded by the GIL

  std::mutex stop_mutex_;
  std::string running_trial_id_;  // guarded by stop_mutex_
  // Stops for trials not begun yet, with their reasons; guarded by stop_mutex_.
  std::map<std::string, std::optional<StopReason>> early_stops_;
  std::optional<StopReason> stop_reason_;  // guarded by stop_mutex_
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> stop_observed_{false};
};

}  // namespace gridexp
