// Experiment: importing experiment.py and running its trials.
#include "executor/experiment.h"

#include <cstdio>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "executor/python_errors.h"
#include "executor/python_json.h"

namespace gridexp {
namespace {

namespace py = pybind11;

struct TrialFailure {
  explicit TrialFailure(std::string error_message, std::string traceback_text = "",
                        bool by_keyboard_interrupt = false)
      : error(std::move(error_message)),
        traceback(std::move(traceback_text)),
        interrupted(by_keyboard_interrupt) {}

  std::string error;
  std::string traceback;  // "" when no Python exception caused the failure
  bool interrupted;
  bool out_of_memory = false;  // CUDA out-of-memory (is_cuda_out_of_memory)
};

TrialFailure failure_from(const py::error_already_set& error, const std::string& what_raised) {
  TrialFailure failure(what_raised + exception_summary(error), format_traceback(error),
                       error.matches(PyExc_KeyboardInterrupt));
  failure.out_of_memory = is_cuda_out_of_memory(error);
  return failure;
}

std::string type_name(py::handle object) {
  return py::str(py::type::handle_of(object).attr("__name__")).cast<std::string>();
}

std::string describe_object(py::handle object) {
  if (object.is_none()) return "None";
  if (py::isinstance<py::tuple>(object)) {
    return "a tuple of " + std::to_string(py::len(object)) + " items";
  }
  std::string name = type_name(object);
  bool vowel = std::string_view("aeiouAEIOU").find(name.front()) != std::string_view::npos;
  return (vowel ? "an " : "a ") + name;
}

// The original framework's later version named the functions of experiment.py in CamelCase.
// Someone porting such a file is told what to rename, not only what is missing.
struct OriginalLaterName {
  const char* name;
  const char* counterpart;  // nullptr: gridexp has none
};
constexpr OriginalLaterName kOriginalLaterNames[] = {{"InitDataset", "init_dataset"},
                                                     {"RunOne", "run_one"},
                                                     {"SaveModel", "save_model"},
                                                     {"CreateModel", nullptr}};

// "a", "a and b", "a, b and c".
std::string join_with_and(const std::vector<std::string>& words) {
  std::string text;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) text += i + 1 == words.size() ? " and " : ", ";
    text += words[i];
  }
  return text;
}

// What to say after "experiment.py does not define ..." when `module` has the original's later
// names: "; it defines RunOne, which belongs to ...: rename RunOne to run_one"; else "".
std::string original_later_names_hint(py::handle module) {
  std::vector<std::string> defined;
  std::vector<std::string> renames;
  std::vector<std::string> without_counterpart;
  for (const OriginalLaterName& later : kOriginalLaterNames) {
    if (!py::hasattr(module, later.name)) continue;
    defined.emplace_back(later.name);
    if (later.counterpart != nullptr) {
      renames.push_back(std::string(later.name) + " to " + later.counterpart);
    } else {
      without_counterpart.emplace_back(later.name);
    }
  }
  if (defined.empty()) return "";
  std::string hint = "; it defines " + join_with_and(defined) + ", which " +
                     (defined.size() == 1 ? "belongs" : "belong") +
                     " to another version of the original framework's contract";
  std::string separator = ": ";
  if (!renames.empty()) {
    hint += separator + "rename ";
    for (std::size_t i = 0; i < renames.size(); ++i) hint += (i > 0 ? ", " : "") + renames[i];
    separator = "; ";
  }
  if (!without_counterpart.empty()) {
    hint += separator + join_with_and(without_counterpart) +
            " has no counterpart (build the model inside run_one, which returns it)";
  }
  return hint;
}

// docs/executor.md step 4: experiment.py's save_model(model, path) when it has one, else
// torch.save of the model's state_dict(), or of the model itself.
std::optional<TrialFailure> save_model_file(py::handle save_callback /* or None */,
                                            py::handle model, const std::filesystem::path& path) {
  std::error_code error_code;
  std::filesystem::create_directories(path.parent_path(), error_code);
  if (error_code) {
    return TrialFailure("cannot create the model directory " + path.parent_path().string() + ": " +
                        error_code.message());
  }
  // A file left by an earlier attempt must not pass for this one's.
  std::filesystem::remove(path, error_code);
  std::string what_raised =
      !save_callback.is_none() ? "save_model(model, path) raised " : "saving the model raised ";
  try {
    if (!save_callback.is_none()) {
      save_callback(model, path.string());
      if (!std::filesystem::exists(path, error_code)) {
        return TrialFailure("save_model(model, path) returned without writing " + path.string());
      }
      return std::nullopt;
    }
    py::module_ torch;
    try {
      torch = py::module_::import("torch");
    } catch (const py::error_already_set& error) {
      if (!error.matches(PyExc_ImportError)) throw;
      return TrialFailure(
          "saving the model needs torch, or a save_model(model, path) function in "
          "experiment.py (" +
          exception_summary(error) + ")");
    }
    bool has_state_dict =
        py::hasattr(model, "state_dict") && PyCallable_Check(model.attr("state_dict").ptr()) != 0;
    torch.attr("save")(
        has_state_dict ? model.attr("state_dict")() : py::reinterpret_borrow<py::object>(model),
        path.string());
    return std::nullopt;
  } catch (const py::error_already_set& error) {
    std::filesystem::remove(path, error_code);  // never hand on a half-written model
    return failure_from(error, what_raised);
  }
}

}  // namespace

Experiment::Experiment(std::filesystem::path workdir, bool shared_gpu)
    : workdir_(std::move(workdir)), shared_gpu_(shared_gpu) {}

Experiment::~Experiment() = default;

std::optional<StartFailure> Experiment::start(const StartCommand& command) {
  start_ = command;
  std::error_code error_code;
  if (!std::filesystem::is_regular_file(workdir_ / "experiment.py", error_code)) {
    return StartFailure{"experiment.py not found in " + workdir_.string(), {}, ""};
  }
  const CodeLocation in_experiment_py{"experiment.py", std::nullopt};
  py::module_ module;
  try {
    module = py::module_::import("experiment");
  } catch (const py::error_already_set& error) {
    return StartFailure{"experiment.py could not be imported: " + exception_summary(error),
                        locate_in_user_code(error, workdir_), format_traceback(error)};
  }
  try {
    init_dataset_ = py::getattr(module, "init_dataset", py::none());
    run_one_ = py::getattr(module, "run_one", py::none());
    save_model_ = py::getattr(module, "save_model", py::none());
  } catch (const py::error_already_set& error) {  // a module __getattr__ that raises
    return StartFailure{"experiment.py could not be inspected: " + exception_summary(error),
                        locate_in_user_code(error, workdir_), format_traceback(error)};
  }
  std::vector<std::string> missing;
  if (init_dataset_.is_none()) missing.emplace_back("init_dataset(config)");
  if (run_one_.is_none()) missing.emplace_back("run_one(hyperparameters, dataset)");
  if (!missing.empty()) {
    std::string names = missing.front();
    if (missing.size() == 2) names += " or " + missing.back();
    return StartFailure{
        "experiment.py does not define " + names + original_later_names_hint(module),
        in_experiment_py, ""};
  }
  if (save_model_.is_none() && py::hasattr(module, "SaveModel")) {
    // Not fatal (the file runs), but its models would silently be saved another way.
    std::fprintf(stderr,
                 "gridexp-executor: warning: experiment.py defines SaveModel, the original "
                 "framework's later name, and no save_model: models are saved with "
                 "torch.save(model.state_dict(), path); rename SaveModel to save_model(model, "
                 "path) to save them your way\n");
  }
  for (auto [name, function] :
       {std::pair{"init_dataset", &init_dataset_}, std::pair{"run_one", &run_one_},
        std::pair{"save_model", &save_model_}}) {
    if (!function->is_none() && PyCallable_Check(function->ptr()) == 0) {
      return StartFailure{"experiment.py defines " + std::string(name) + ", but as " +
                              describe_object(*function) + ", not a function",
                          in_experiment_py, ""};
    }
  }
  if (command.consistent_dataset) {
    try {
      dataset_ = init_dataset_(json_to_python(command.config));
    } catch (const py::error_already_set& error) {
      return StartFailure{"init_dataset(config) raised " + exception_summary(error),
                          locate_in_user_code(error, workdir_), format_traceback(error)};
    }
  }
  return std::nullopt;
}

TrialOutcome Experiment::run_trial(const RunCommand& command, TrialContext& context) {
  const std::optional<std::int64_t> allocated_before = gpu_memory_.allocated_bytes();
  gpu_memory_.reset_peaks();
  context.begin_trial(command.trial, command.checkpoint, command.checkpoint_dir);
  // run_steps() holds the trial's Python objects (its results, model and dataset); they are
  // dropped when it returns, so what is still allocated afterwards is what the trial left.
  TrialOutcome outcome = run_steps(command);
  if (auto* result = std::get_if<ResultEvent>(&outcome.event)) {
    result->stop_observed = context.stop_observed();
  }
  context.end_trial();
  const std::optional<std::int64_t> peak = gpu_memory_.peak_bytes();
  std::visit(
      [&peak](auto& event) {
        if constexpr (requires { event.peak_gpu_memory_bytes; }) event.peak_gpu_memory_bytes = peak;
      },
      outcome.event);
  release_after_trial(gpu_memory_, allocated_before, shared_gpu_);
  return outcome;
}

TrialOutcome Experiment::run_steps(const RunCommand& command) {
  const std::string& trial_id = command.trial_id;
  auto failed = [&trial_id](const TrialFailure& failure) {
    return TrialOutcome{FailedEvent{trial_id, failure.error, failure.traceback, std::nullopt,
                                    failure.out_of_memory},
                        failure.interrupted};
  };
  py::object dataset = dataset_;
  if (!start_.consistent_dataset) {
    try {
      dataset = init_dataset_(json_to_python(start_.config));
    } catch (const py::error_already_set& error) {
      return failed(failure_from(error, "init_dataset(config) raised "));
    }
  }
  py::object returned;
  try {
    returned = run_one_(json_to_python(command.trial.at("hyperparameters")), dataset);
  } catch (const py::error_already_set& error) {
    return failed(failure_from(error, ""));
  }
  if (!py::isinstance<py::tuple>(returned) || py::len(returned) != 2) {
    return failed(TrialFailure("run_one must return a tuple (results, model), but returned " +
                               describe_object(returned)));
  }
  auto pair = py::reinterpret_borrow<py::tuple>(returned);
  Result<nlohmann::json> results = python_to_json(pair[0], "results");
  if (!results) return failed(TrialFailure(results.status().message()));
  std::optional<std::string> model_path;
  py::object model = pair[1];
  if (start_.save_models && !model.is_none()) {
    std::filesystem::path path = std::filesystem::path(start_.model_dir) / (trial_id + ".pt");
    if (std::optional<TrialFailure> failure = save_model_file(save_model_, model, path)) {
      return failed(*failure);
    }
    model_path = path.string();
  }
  return {ResultEvent{trial_id, std::move(*results), model_path}};
}

}  // namespace gridexp
