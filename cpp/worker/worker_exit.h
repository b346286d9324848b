// gridexp-worker's exit statuses, and the one way its parts end the run with a reason.
#pragma once

#include <signal.h>

#include <string>

#include "worker/progress.h"

namespace gridexp {

inline constexpr int kWorkerExitOk = 0;
// A trial failed (--raise_on_failure), or a fatal error.
inline constexpr int kWorkerExitFailed = 1;
inline constexpr int kWorkerExitBadSetup = 2;  // bad flags, password, experiment.py
// Stopped by a signal: 128 + the signal's number. Its parts say kWorkerExitInterrupted;
// main() turns that into the status of the signal that came (exit_status_for_signal).
inline constexpr int kWorkerExitInterrupted = 128 + SIGINT;   // 130
inline constexpr int kWorkerExitTerminated = 128 + SIGTERM;   // 143
inline constexpr int kWorkerExitUserSignal1 = 128 + SIGUSR1;  // 138

// The exit status of a worker stopped by `signal` (0: none came, kWorkerExitInterrupted).
inline int exit_status_for_signal(int signal) {
  return signal > 0 ? 128 + signal : kWorkerExitInterrupted;
}

// "SIGTERM", "SIGINT", "SIGUSR1" (the stop signals), else "signal N".
inline std::string stop_signal_name(int signal) {
  switch (signal) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "signal " + std::to_string(signal);
  }
}

// Prints "error: <reason>" last and gives `exit_status` back.
inline int fail_with(Progress& progress, int exit_status, const std::string& reason) {
  progress.message("error: " + reason);
  return exit_status;
}

}  // namespace gridexp
