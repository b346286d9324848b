// gridexp-worker: runs trials of a gridexp-server's grid with the user's experiment.py.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "common/auth.h"
#include "common/version.h"
#include "worker/devices.h"
#include "worker/gpu_packing.h"
#include "worker/gpu_slots.h"
#include "worker/gpu_telemetry.h"
#include "worker/options.h"
#include "worker/orphans.h"
#include "worker/progress.h"
#include "worker/supervisor.h"

namespace {

std::filesystem::path own_directory() {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path(".") : self.parent_path();
}

// Removes `name` from the environment, first blanking its value where the process started
// with it: /proc/<pid>/environ shows that original block, and the user's code (our child)
// could read it there.
void scrub_environment_variable(const char* name) {
  std::size_t length = std::strlen(name);
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, name, length) == 0 && (*entry)[length] == '=') {
      char* value = *entry + length + 1;
      std::memset(value, 0, std::strlen(value));
    }
  }
  ::unsetenv(name);
}

// Where detect_devices() looks for /proc/driver/nvidia/gpus. GRIDEXP_PROC_ROOT is a test seam:
// it lets a machine without a GPU play one with several (tests/python/test_gpu_slots.py).
std::filesystem::path proc_root() {
  const char* root = std::getenv("GRIDEXP_PROC_ROOT");
  return root != nullptr && *root != '\0' ? std::filesystem::path(root) : "/proc";
}

gridexp::Result<std::vector<gridexp::SlotPlan>> plan_executor_slots(
    const gridexp::WorkerOptions& options, gridexp::Progress& progress) {
  const char* inherited = std::getenv("CUDA_VISIBLE_DEVICES");
  std::vector<gridexp::VisibleGpu> visible = gridexp::visible_gpus(
      gridexp::detect_devices(proc_root()),
      inherited != nullptr ? std::optional<std::string>(inherited) : std::nullopt);
  // auto measures memory through NVML; without it, one trial per GPU (gpu_packing.h).
  const bool auto_without_nvml = options.trials_per_gpu_auto && !gridexp::gpu_reader_for(nullptr);
  const int per_gpu = !options.trials_per_gpu_auto ? options.trials_per_gpu
                      : auto_without_nvml          ? 1
                                                   : gridexp::kMaxAutoTrialsPerGpu;
  gridexp::Result<std::vector<gridexp::SlotPlan>> slots =
      gridexp::plan_slots(options.gpus, per_gpu, visible);
  if (!slots) return slots;
  if (slots->front().devices.empty()) {
    if (per_gpu > 1 || options.trials_per_gpu_auto) {
      progress.message(
          "no GPU to run on: one executor on the CPU (--trials-per-gpu counts per GPU)");
    }
  } else if (auto_without_nvml) {
    progress.message("--trials-per-gpu auto: NVML (" + gridexp::gpu_telemetry_library() +
                     ") cannot be loaded, so GPU memory cannot be measured: one trial per GPU");
  }
  return slots;
}

// What the signal thread tells the rest of the worker.
struct StopSignals {
  std::atomic<bool> interrupted{false};  // the first stop signal came
  std::atomic<int> first_signal{0};      // its number
  std::atomic<bool> kill_now{false};     // the second came
};

// Takes SIGINT/SIGTERM/SIGUSR1 (blocked in every thread) on a thread of its own: the first
// sets `interrupted` (the running trials are preempted: asked to stop, --grace_seconds, handed
// back), the second kills the executors at once (the trials are still handed back), the third
// ends the worker at once. SIGUSR1 only ever asks for the graceful stop (a batch system's
// time-limit warning may reach the worker twice: directly and forwarded by its job script), so
// a SIGUSR1 after the first signal changes nothing.
void watch_signals(sigset_t signals, StopSignals& stop, gridexp::Progress& progress) {
  std::thread([&stop, &progress, signals] {
    int received = 0;
    int count = 0;
    while (sigwait(&signals, &received) == 0) {
      std::string name = gridexp::stop_signal_name(received);
      if (count >= 1 && received == SIGUSR1) {
        progress.message(name + " again: already stopping (SIGTERM or SIGINT kills the executors)");
        continue;
      }
      ++count;
      if (count == 1) {
        stop.first_signal = received;
        stop.interrupted = true;
        progress.message(name +
                         ": stopping; the running trials are asked to stop and handed back "
                         "(again to kill them at once)");
      } else if (count == 2) {
        stop.kill_now = true;
        progress.message(name +
                         " again: killing the executors; the trials are still handed back "
                         "(a third time to exit at once)");
      } else {
        progress.message(name + " a third time: exiting at once");
        gridexp::end_orphans(-1, std::chrono::milliseconds(1000));
        std::_Exit(gridexp::exit_status_for_signal(stop.first_signal));
      }
    }
  }).detach();
}

gridexp::Result<std::string> choose_password(const gridexp::WorkerOptions& options,
                                             gridexp::Progress& progress) {
  if (options.password) {
    progress.message(
        "warning: --server_password is visible to every user of this machine in `ps`; prefer "
        "GRIDEXP_PASSWORD or --password_file");
    return *options.password;
  }
  if (options.password_file) return gridexp::read_password_file(*options.password_file);
  if (const char* from_environment = std::getenv("GRIDEXP_PASSWORD");
      from_environment != nullptr && *from_environment != '\0') {
    return std::string(from_environment);
  }
  return gridexp::Status::invalid_argument(
      "no password: set GRIDEXP_PASSWORD, or pass --password_file=FILE (gridexp-server prints "
      "its password at start-up and keeps it in <experiment dir>/.gridexp/password)");
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT/SIGTERM/SIGUSR1 are taken by a thread of ours; every thread started later inherits
  // the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  gridexp::Progress progress(stderr);
  std::vector<std::string> arguments(argv + 1, argv + argc);
  gridexp::Result<gridexp::WorkerOptions> options = gridexp::parse_worker_options(arguments);
  if (!options) {
    progress.message("error: " + options.status().message());
    return gridexp::kWorkerExitBadSetup;
  }
  if (options->show_help) {
    std::cout << gridexp::worker_usage();
    return gridexp::kWorkerExitOk;
  }
  if (options->show_version) {
    std::cout << "gridexp-worker " << gridexp::kVersion << "\n";
    return gridexp::kWorkerExitOk;
  }
  gridexp::Result<std::vector<gridexp::SlotPlan>> slots = plan_executor_slots(*options, progress);
  if (!slots) {
    progress.message("error: " + slots.status().message());
    return gridexp::kWorkerExitBadSetup;
  }
  // The executors' own; a stale one here would mark a child not yet exec'd as a slot's.
  ::unsetenv("GRIDEXP_SLOT");
  gridexp::Result<std::string> password = choose_password(*options, progress);
  scrub_environment_variable("GRIDEXP_PASSWORD");
  if (!password) {
    progress.message("error: " + password.status().message());
    return gridexp::kWorkerExitBadSetup;
  }
  std::filesystem::path executor = own_directory() / "gridexp-executor";
  if (const char* override_path = std::getenv("GRIDEXP_EXECUTOR"); override_path != nullptr) {
    executor = override_path;
  }

  static StopSignals stop;  // outlives the detached signal thread
  watch_signals(signals, stop, progress);

  gridexp::Supervisor supervisor(
      {*options, *password, executor, std::move(slots).value(), &stop.first_signal, &stop.kill_now},
      progress, stop.interrupted);
  int exit_status = supervisor.run();
  return exit_status == gridexp::kWorkerExitInterrupted
             ? gridexp::exit_status_for_signal(stop.first_signal)
             : exit_status;
}
