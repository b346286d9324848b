// Experiment: the user's experiment.py inside the embedded interpreter. start() imports it and
// builds the shared dataset (the `start` command); run_trial() runs one trial through the steps
// of docs/executor.md, "Running a trial", and says how it ended.
//
// Only the thread that runs trials may use an Experiment, with the GIL held. It owns Python
// objects (the module, the dataset), so it must be destroyed before the interpreter.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <pybind11/pybind11.h>
#include <nlohmann/json.hpp>

#include "executor/protocol.h"
#include "executor/trial_context.h"

namespace gridexp {

// Why `start` failed: the content of the fatal event.
struct StartFailure {
  std::string error;
  CodeLocation location;
  std::string traceback;  // "" when no Python exception caused it
};

struct TrialOutcome {
  ExecutorEvent event;  // a ResultEvent or a FailedEvent
  // The trial ended in KeyboardInterrupt (the supervisor sent SIGINT): the executor should exit.
  bool interrupted = false;
};

class Experiment {
 public:
  explicit Experiment(std::filesystem::path workdir);
  ~Experiment();
  Experiment(const Experiment&) = delete;
  Experiment& operator=(const Experiment&) = delete;

  // Imports <workdir>/experiment.py, checks it defines init_dataset and run_one (when it
  // lacks them but has the original framework's later names, InitDataset, RunOne, ..., the
  // failure says what to rename), and with consistent_dataset calls init_dataset(config).
  // Call once; empty on success.
  std::optional<StartFailure> start(const StartCommand& command);

  // Runs a trial after a successful start(); `context` serves gridexp.trial/should_stop/report
  // meanwhile. Afterwards frees what the trial left on the GPU (torch.cuda.empty_cache).
  TrialOutcome run_trial(const RunCommand& command, TrialContext& context);

 private:
  TrialOutcome run_steps(const RunCommand& command);

  const std::filesystem::path workdir_;
  StartCommand start_;
  pybind11::object init_dataset_;
  pybind11::object run_one_;
  pybind11::object save_model_;  // experiment.py's own save_model(model, path), or None
  pybind11::object dataset_;     // init_dataset(config) when consistent_dataset
};

// torch.cuda.empty_cache() (after a garbage collection, which frees tensors held in reference
// cycles, like those of a traceback) when torch is imported and CUDA initialized. GIL held.
void release_accelerator_memory();

}  // namespace gridexp
