// gridexp-worker's exit statuses, and the one way its parts end the run with a reason.
#pragma once

#include <string>

#include "worker/progress.h"

namespace gridexp {

inline constexpr int kWorkerExitOk = 0;
// A trial failed (--raise_on_failure), or a fatal error.
inline constexpr int kWorkerExitFailed = 1;
inline constexpr int kWorkerExitBadSetup = 2;  // bad flags, password, experiment.py
inline constexpr int kWorkerExitInterrupted = 130;

// Prints "error: <reason>" last and gives `exit_status` back.
inline int fail_with(Progress& progress, int exit_status, const std::string& reason) {
  progress.message("error: " + reason);
  return exit_status;
}

}  // namespace gridexp
