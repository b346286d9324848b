// Supervisor: gridexp-worker's setup and its parts put together. No Python runs here.
//
// Prepares the workdir (and its lock), registers with the server, fetches scripts.zip/data.zip
// when asked, delivers what an earlier run kept in the Outbox, checks for experiment.py, then
// hands over to the ClaimLoop with one WorkerSlot: an ExecutorSession (the executor of
// docs/executor.md, started and waited for before the first claim, so a broken experiment.py
// burns no trial), a TrialRunner (stop and kill policy), and Delivery through the Outbox.
// Processes the user's code leaves behind (orphans.h) are ended with each trial and when the
// worker ends. SIGINT/SIGTERM release the running trial and exit. run() returns the process
// exit status (worker_exit.h) and prints the reason for a non-zero one last. One Supervisor
// per process; run() is called once, from the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "worker/delivery.h"
#include "worker/executor_channel.h"
#include "worker/options.h"
#include "worker/outbox.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"
#include "worker/workdir_lock.h"
#include "worker/worker_exit.h"
#include "worker/worker_slot.h"

namespace gridexp {

struct SupervisorSetup {
  WorkerOptions options;
  std::string password;
  std::filesystem::path executor_path;
};

class Supervisor {
 public:
  Supervisor(SupervisorSetup setup, Progress& progress, const std::atomic<bool>& interrupted);
  ~Supervisor();

  int run();

 private:
  // Waits `delay` in short steps; false once interrupted.
  bool keep_waiting(std::chrono::milliseconds delay);
  Status prepare_workdir();
  // Registers; an exit status when that failed.
  std::optional<int> register_worker();
  Status fetch_archives();
  // experiment.py in the workdir, or an error that says how to get it there.
  Status check_experiment_py() const;
  std::unique_ptr<WorkerSlot> make_slot();
  int run_dry();
  // One trial of a dry run; an exit status when the run ends there.
  std::optional<int> run_dry_trial(WorkerSlot& slot, const nlohmann::json& trial,
                                   const std::string& experiment);
  int run_claims();

  SupervisorSetup setup_;
  std::string base_url_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  FileSystem& fs_;
  std::filesystem::path state_dir_;
  std::filesystem::path model_dir_;
  std::unique_ptr<WorkdirLock> workdir_lock_;  // held from prepare_workdir() on
  HttpServerApi server_;
  RetryPolicy retry_;
  Outbox outbox_;
  Delivery delivery_;
  std::string worker_id_;
  nlohmann::json config_;
  std::chrono::milliseconds heartbeat_interval_{10'000};
};

}  // namespace gridexp
