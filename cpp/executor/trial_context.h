// TrialContext: the trial in hand, as the user's code sees it through the `_gridexp_executor`
// module (which python/gridexp wraps as gridexp.report, gridexp.trial and gridexp.should_stop).
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
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <pybind11/pybind11.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "executor/event_writer.h"

namespace gridexp {

class TrialContext {
 public:
  TrialContext(EventSink& events, const Clock& clock);

  // Makes `context` the one the `_gridexp_executor` module serves (nullptr: none). GIL held.
  static void install(TrialContext* context);

  // The trial starts: gridexp.trial() returns `trial` (its "id" a string), and should_stop()
  // is true when a stop for it came already. GIL held.
  void begin_trial(const nlohmann::json& trial);
  // The trial ended: no trial, stop flag cleared. GIL held.
  void end_trial();

  // The supervisor asked trial `trial_id` to stop: the trial in hand, or the next to begin.
  void request_stop(const std::string& trial_id);
  bool should_stop() const { return stop_requested_.load(); }

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
  std::optional<nlohmann::json> trial_;  // guarded by the GIL
  std::string trial_id_;                 // guarded by the GIL

  std::mutex stop_mutex_;
  std::string running_trial_id_;          // guarded by stop_mutex_
  std::set<std::string> early_stop_ids_;  // stops for trials not begun yet; guarded by stop_mutex_
  std::atomic<bool> stop_requested_{false};
};

}  // namespace gridexp
