// Supervisor: gridexp-worker's main loop. No Python runs here.
//
// Registers with the server, fetches scripts.zip/data.zip when asked, starts the executor
// (docs/executor.md) and waits until experiment.py is imported and the dataset built — so a
// broken experiment.py burns no trial — then claims trials one at a time: hands each to the
// executor, keeps its lease alive (TrialHeartbeat), and delivers the outcome through the
// Outbox (results and model kept on disk until the server acknowledges them). A dead executor
// fails its trial with the cause and is replaced. Processes the user's code leaves behind
// (orphans.h) are ended with each trial and when the worker ends. SIGINT/SIGTERM release the
// running trial and exit. run() returns the process exit status and prints the reason for a
// non-zero one last. One Supervisor per process; run() is called once, from the main thread.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "worker/executor_process.h"
#include "worker/options.h"
#include "worker/outbox.h"
#include "worker/progress.h"
#include "worker/server_connection.h"
#include "worker/trial_heartbeat.h"
#include "worker/workdir_lock.h"

namespace gridexp {

inline constexpr int kWorkerExitOk = 0;
inline constexpr int kWorkerExitFailed =
    1;  // a trial failed (--raise_on_failure), or a fatal error
inline constexpr int kWorkerExitBadSetup = 2;  // bad flags, password, experiment.py
inline constexpr int kWorkerExitInterrupted = 130;

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
  enum class TrialEnd { kDelivered, kFailedDelivered, kLeaseLost, kInterrupted, kNotStarted };
  struct Outcome;

  int fail_with(int exit_status, const std::string& reason);
  Result<nlohmann::json> call(const std::function<Result<nlohmann::json>()>& request);
  Status prepare_workdir();
  Status fetch_archives();
  // experiment.py in the workdir, or an error that says how to get it there.
  Status check_experiment_py() const;
  // Ends what the user's code left running (orphans re-parented to the worker, a
  // PR_SET_CHILD_SUBREAPER), keeping the live executor.
  void end_left_behind(const std::string& trial_id);
  Status start_executor();
  // Uploads the model while `heartbeat` (if any) keeps the lease alive, then flushes and stops
  // the heartbeat and completes or fails the trial.
  // `*ended_cancelled` (when given) turns true if the server recorded a failure as cancelled.
  // A completion with a `next_claim_id` also claims the next trial; its answer, when the
  // server's reply brought it, goes to `*next_claim`.
  // Results over kMaxJsonBodyBytes (or answered 413) and a model over --max-upload-mb fail the
  // trial instead; `finished` then says so (succeeded false, the error).
  Status deliver(FinishedTrial& finished, TrialHeartbeat* heartbeat,
                 bool* ended_cancelled = nullptr, const std::string& next_claim_id = "",
                 std::optional<nlohmann::json>* next_claim = nullptr);
  Status deliver_outbox();
  // Runs one trial on the executor; `heartbeat` is null in a dry run. The heartbeat keeps
  // running afterwards, for the delivery.
  TrialEnd run_trial(const nlohmann::json& trial, TrialHeartbeat* heartbeat, Outcome* outcome);
  int run_dry();
  void on_executor_output(const std::string& line, bool is_stderr);
  bool keep_waiting(std::chrono::milliseconds delay);

  SupervisorSetup setup_;
  std::string base_url_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  FileSystem& fs_;
  std::filesystem::path state_dir_;
  std::filesystem::path model_dir_;
  std::unique_ptr<WorkdirLock> workdir_lock_;  // held from prepare_workdir() on
  ServerConnection connection_;
  RetryPolicy retry_;
  Outbox outbox_;
  std::unique_ptr<ExecutorProcess> executor_;
  std::string worker_id_;
  nlohmann::json config_;
  std::chrono::milliseconds heartbeat_interval_{10'000};

  // The trial whose output the executor is producing: its log and heartbeat.
  std::mutex output_mutex_;
  std::string output_trial_id_;
  TrialHeartbeat* output_heartbeat_ = nullptr;
};

}  // namespace gridexp
