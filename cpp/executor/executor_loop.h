// The executor's main loop: starts the embedded interpreter, then answers the supervisor's
// commands with events, as docs/executor.md says: `start` imports experiment.py, each `run`
// runs one trial, `stop` (taken by the reader thread at once) raises the trial's stop flag.
//
// run_executor() is called once per process, from its main thread: Python's signal handlers
// run there, so SIGINT raises KeyboardInterrupt in the user's code.
#pragma once

#include <filesystem>

namespace gridexp {

// How the executor ends (its exit status).
inline constexpr int kExecutorExitOk = 0;             // end of the command pipe
inline constexpr int kExecutorExitUsage = 2;          // bad arguments or file descriptors
inline constexpr int kExecutorExitFatal = 3;          // after a fatal event
inline constexpr int kExecutorExitInterrupted = 130;  // SIGINT (KeyboardInterrupt)

struct ExecutorOptions {
  int command_fd = -1;                      // commands arrive here
  int event_fd = -1;                        // events go here
  std::filesystem::path python_executable;  // see find_python_executable()
  std::filesystem::path workdir;            // absolute; experiment.py lives here
  // Other executors share this one's GPU: from $GRIDEXP_SHARED_GPU (accelerator_memory.h).
  bool shared_gpu = false;
};

// Runs until the command pipe ends (kExecutorExitOk, after the trial in hand), a fatal error
// (kExecutorExitFatal, after the fatal event) or SIGINT: during a trial that trial is reported
// failed ("KeyboardInterrupt") first; between trials the executor just ends
// (kExecutorExitInterrupted). Every event is written before it returns.
int run_executor(const ExecutorOptions& options);

}  // namespace gridexp
