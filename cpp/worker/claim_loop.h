// ClaimLoop: claims trials from the server and hands each to a WorkerSlot until the grid is
// finished, --max_trials trials ran, a trial failed under --raise_on_failure, or the worker is
// interrupted; waits (polling) while the trials left run on other workers. Every claim carries
// an id, sent again with its retries, so a claim whose answer was lost gets its lease again
// instead of a second one (docs/protocol.md, "Claim"); a completion claims the next trial
// with the next id, and when its answer does not bring that claim's answer, the loop sends
// the claim itself, with the same id.
//
// run() returns the worker's exit status (worker_exit.h) and prints the reason for a
// non-zero one last. For one thread. With one slot per GPU, each slot would run such a loop
// on its own thread (the server hands out trials one claim at a time).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"
#include "worker/worker_slot.h"

namespace gridexp {

struct ClaimSettings {
  std::string worker_id;
  std::optional<std::int64_t> max_trials;
  std::chrono::milliseconds poll_interval{2000};
  bool raise_on_failure = true;
  // Waits `delay`, returning false when the worker was interrupted meanwhile.
  std::function<bool(std::chrono::milliseconds delay)> keep_waiting;
  // A fresh claim id.
  std::function<std::string()> new_claim_id;
};

class ClaimLoop {
 public:
  ClaimLoop(ClaimSettings settings, ServerApi& server, WorkerSlot& slot, const RetryPolicy& retry,
            Progress& progress, const std::atomic<bool>& interrupted);

  int run();

 private:
  // The next claim answer: the one a completion brought, or a claim sent now.
  Result<nlohmann::json> next_answer();
  // Gives back a trial a completion claimed but the worker will not run.
  void give_back_next_claim();
  int exit_interrupted();
  // An exit status when the loop should end before claiming (again).
  std::optional<int> should_stop();
  // An exit status when the answer ends the loop; nullopt to go on.
  std::optional<int> on_answer(const nlohmann::json& answer);
  std::optional<int> after_trial(const std::string& trial_id, const SlotResult& result);

  ClaimSettings settings_;
  ServerApi& server_;
  WorkerSlot& slot_;
  const RetryPolicy& retry_;
  Progress& progress_;
  const std::atomic<bool>& interrupted_;
  std::string claim_id_;
  std::string claim_path_;
  std::optional<nlohmann::json> next_claim_;
  std::int64_t trials_run_ = 0;
};

}  // namespace gridexp
