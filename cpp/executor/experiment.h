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
#include "executor/torch_memory.h"
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
  // `shared_gpu`: other executors use this one's GPU (see release_after_trial).
  explicit Experiment(std::filesystem::path workdir, bool shared_gpu = false);
  ~Experiment();
  Experiment(const Experiment&) = delete;
  Experiment& operator=(const Experiment&) = delete;

  // Imports <workdir>/experiment.py, checks it defines init_dataset and run_one (when it
  // lacks them but has the original framework's later names, InitDataset, RunOne, ..., the
  // failure says what to rename), and with consistent_dataset calls init_dataset(config).
  // Call once; empty on success.
  std::optional<StartFailure> start(const StartCommand& command);

  // Runs a trial after a successful start(); `context` serves gridexp.trial/should_stop/report
  // meanwhile. When the trial used CUDA, its event carries the trial's peak GPU memory, and
  // what it left on the GPU is freed as release_after_trial() says (docs/executor.md, "GPU
  // memory between trials").
  TrialOutcome run_trial(const RunCommand& command, TrialContext& context);

 private:
  TrialOutcome run_steps(const RunCommand& command);

  const std::filesystem::path workdir_;
  const bool shared_gpu_;
  TorchCudaMemory gpu_memory_;
  StartCommand start_;
  pybind11::object init_dataset_;
  pybind11::object run_one_;
  pybind11::object save_model_;  // experiment.py's own save_model(model, path), or None
  pybind11::object dataset_;     // init_dataset(config) when consistent_dataset
};

}  // namespace gridexp
