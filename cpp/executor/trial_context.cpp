// TrialContext and the `_gridexp_executor` module that serves it to the user's code.
//
// The module lives in this file on purpose: PYBIND11_EMBEDDED_MODULE registers itself from a
// static initializer, which the linker keeps only if something else in the same object file
// is used, as TrialContext always is.
#include "executor/trial_context.h"

#include <unistd.h>

#include <filesystem>
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

void TrialContext::begin_trial(const nlohmann::json& trial, std::optional<CheckpointRef> checkpoint,
                               std::string checkpoint_dir) {
  trial_ = trial;
  trial_id_ = trial.at("id").get<std::string>();
  checkpoint_ = std::move(checkpoint);
  checkpoint_dir_ = std::move(checkpoint_dir);
  stop_observed_ = false;
  std::lock_guard lock(stop_mutex_);
  running_trial_id_ = trial_id_;
  auto early = early_stops_.find(trial_id_);
  stop_requested_ = early != early_stops_.end();
  stop_reason_ = early != early_stops_.end() ? early->second : std::nullopt;
  // Trials run one at a time, so stops for any other id are for trials already over.
  early_stops_.clear();
}

void TrialContext::end_trial() {
  trial_.reset();
  trial_id_.clear();
  checkpoint_.reset();
  checkpoint_dir_.clear();
  std::lock_guard lock(stop_mutex_);
  running_trial_id_.clear();
  stop_requested_ = false;
  stop_reason_.reset();
}

void TrialContext::request_stop(const std::string& trial_id, std::optional<StopReason> reason) {
  std::lock_guard lock(stop_mutex_);
  if (trial_id == running_trial_id_) {
    // The first reason stands: a trial preempted and then cancelled was preempted first.
    if (!stop_requested_) stop_reason_ = reason;
    stop_requested_ = true;
  } else {
    early_stops_.emplace(trial_id, reason);
  }
}

bool TrialContext::should_stop_observed() {
  bool stop = stop_requested_.load();
  if (stop) stop_observed_ = true;
  return stop;
}

std::optional<StopReason> TrialContext::stop_reason() {
  std::lock_guard lock(stop_mutex_);
  return stop_requested_ ? stop_reason_ : std::nullopt;
}

py::object TrialContext::checkpoint() const {
  if (!trial_ || !checkpoint_) return py::none();
  py::dict checkpoint;
  checkpoint["path"] = checkpoint_->path;
  checkpoint["kind"] = checkpoint_kind_name(checkpoint_->kind);
  checkpoint["step"] = checkpoint_->step ? py::object(py::int_(*checkpoint_->step)) : py::none();
  return checkpoint;
}

py::object TrialContext::checkpoint_dir() const {
  if (!trial_ || checkpoint_dir_.empty()) return py::none();
  return py::str(checkpoint_dir_);
}

py::object TrialContext::staging_dir() const {
  if (!trial_ || checkpoint_dir_.empty()) return py::none();
  return py::str(std::filesystem::path(checkpoint_dir_).parent_path().string());
}

Status TrialContext::checkpoint_saved(const std::string& path, const std::string& kind,
                                      std::optional<std::int64_t> step) {
  std::optional<CheckpointKind> known = checkpoint_kind_from_name(kind);
  if (!known) return Status::invalid_argument("no checkpoint kind: " + kind);
  std::filesystem::path file(path);
  if (checkpoint_dir_.empty() ||
      file.parent_path() != std::filesystem::path(checkpoint_dir_).parent_path()) {
    return Status::invalid_argument("a checkpoint must be staged beside the checkpoint_dir: " +
                                    path);
  }
  events_.post(CheckpointEvent{trial_id_, path, *known, step});
  return Status::ok();
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
        return context != nullptr && context->should_stop_observed();
      },
      "Whether the server asked the trial in hand to stop.");
  module.def(
      "stop_reason",
      []() -> py::object {
        gridexp::TrialContext* context = installed_context.load();
        std::optional<gridexp::StopReason> reason =
            context != nullptr ? context->stop_reason() : std::nullopt;
        return reason ? py::object(py::str(gridexp::stop_reason_name(*reason))) : py::none();
      },
      "Why the trial in hand was asked to stop (preempted, cancelled, lease lost), or None.");
  module.def(
      "checkpoint",
      []() -> py::object {
        gridexp::TrialContext* context = installed_context.load();
        return context == nullptr ? py::none() : context->checkpoint();
      },
      "The checkpoint the trial in hand resumes from, {path, kind, step}, or None.");
  module.def(
      "checkpoint_dir",
      []() -> py::object {
        gridexp::TrialContext* context = installed_context.load();
        return context == nullptr ? py::none() : context->checkpoint_dir();
      },
      "The checkpoint directory of the trial in hand, or None.");
  module.def(
      "staging_dir",
      []() -> py::object {
        gridexp::TrialContext* context = installed_context.load();
        return context == nullptr ? py::none() : context->staging_dir();
      },
      "Where a checkpoint of the trial in hand is written before checkpoint_saved(), or None.");
  module.def(
      "checkpoint_saved",
      [](const std::string& path, const std::string& kind, std::optional<std::int64_t> step) {
        gridexp::TrialContext* context = installed_context.load();
        if (context == nullptr || !context->has_trial()) {
          throw py::value_error("no trial in hand");
        }
        if (context->in_forked_process()) {
          throw py::value_error(
              "in a process forked from the executor; save checkpoints from the process that "
              "runs run_one");
        }
        gridexp::Status status = context->checkpoint_saved(path, kind, step);
        if (!status) throw py::value_error(status.message());
      },
      py::arg("path"), py::arg("kind"), py::arg("step"),
      "Hands the complete checkpoint file `path` over to the supervisor, which uploads it.");
}
