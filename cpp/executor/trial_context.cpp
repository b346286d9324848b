// TrialContext and the `_gridexp_executor` module that serves it to the user's code.
//
// The module lives in this file on purpose: PYBIND11_EMBEDDED_MODULE registers itself from a
// static initializer, which the linker keeps only if something else in the same object file
// is used, as TrialContext always is.
#include "executor/trial_context.h"

#include <unistd.h>

#include <utility>

#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include "executor/protocol.h"
#include "executor/python_json.h"

namespace gridexp {
namespace {

namespace py = pybind11;

std::atomic<TrialContext*> installed_context{nullptr};

// A RuntimeWarning pointing at the user's call of gridexp.report (stack level 2: the caller of
// the python/gridexp wrapper). Python shows it once per calling line.
void warn_report_ignored(const char* why) {
  if (PyErr_WarnEx(PyExc_RuntimeWarning, why, 2) != 0) throw py::error_already_set();
}

}  // namespace

TrialContext::TrialContext(EventSink& events, const Clock& clock)
    : events_(events), clock_(clock), owner_pid_(::getpid()) {}

void TrialContext::install(TrialContext* context) { installed_context.store(context); }

void TrialContext::begin_trial(const nlohmann::json& trial) {
  trial_ = trial;
  trial_id_ = trial.at("id").get<std::string>();
  std::lock_guard lock(stop_mutex_);
  running_trial_id_ = trial_id_;
  stop_requested_ = early_stop_ids_.contains(trial_id_);
  // Trials run one at a time, so stops for any other id are for trials already over.
  early_stop_ids_.clear();
}

void TrialContext::end_trial() {
  trial_.reset();
  trial_id_.clear();
  std::lock_guard lock(stop_mutex_);
  running_trial_id_.clear();
  stop_requested_ = false;
}

void TrialContext::request_stop(const std::string& trial_id) {
  std::lock_guard lock(stop_mutex_);
  if (trial_id == running_trial_id_) {
    stop_requested_ = true;
  } else {
    early_stop_ids_.insert(trial_id);
  }
}

py::object TrialContext::trial() const { return trial_ ? json_to_python(*trial_) : py::none(); }

Status TrialContext::report(std::optional<std::int64_t> step, py::handle values) {
  Result<nlohmann::json> converted = python_to_json(values, "metrics");
  if (!converted) return converted.status();
  events_.post(MetricsEvent{trial_id_, step, clock_.now_ms(), std::move(*converted)});
  return Status::ok();
}

bool TrialContext::in_forked_process() const { return ::getpid() != owner_pid_; }

}  // namespace gridexp

PYBIND11_EMBEDDED_MODULE(_gridexp_executor, module) {
  namespace py = pybind11;
  using gridexp::installed_context;
  module.doc() = "The executor's side of gridexp.report, gridexp.trial and gridexp.should_stop.";
  module.def(
      "report",
      [](std::optional<std::int64_t> step, const py::dict& values) {
        gridexp::TrialContext* context = installed_context.load();
        if (context == nullptr || !context->has_trial()) {
          gridexp::warn_report_ignored("gridexp.report() outside a trial is ignored");
          return;
        }
        if (context->in_forked_process()) {
          gridexp::warn_report_ignored(
              "gridexp.report() in a process forked from the executor is ignored; report from "
              "the process that runs run_one");
          return;
        }
        gridexp::Status status = context->report(step, values);
        if (!status) throw py::type_error(status.message());
      },
      py::arg("step"), py::arg("values"),
      "Sends metrics of the trial in hand to the supervisor; never waits on it.");
  module.def(
      "trial",
      []() -> py::object {
        gridexp::TrialContext* context = installed_context.load();
        return context == nullptr ? py::none() : context->trial();
      },
      "The trial in hand as a dict (id, attempt, experiment, hyperparameters), or None.");
  module.def(
      "should_stop",
      [] {
        gridexp::TrialContext* context = installed_context.load();
        return context != nullptr && context->should_stop();
      },
      "Whether the server asked the trial in hand to stop.");
}
