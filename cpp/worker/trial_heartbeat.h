// TrialHeartbeat: keeps one leased trial alive while the executor runs it.
//
// On its own thread and its own connection it sends a heartbeat every `heartbeat_interval`
// (a third of the lease) and, about once a second, the metrics gathered since the last send
// and the log lines not yet sent. The log waits in a LogSpool (a file in `spool_directory`),
// so the whole of it, up to the server's 64 MiB, reaches the server in flat memory, in
// chunks of at most 1 MiB, after an outage too; a backlog is sent without waiting. A 409 from the
// server means the lease is gone (expired and re-granted, or the trial cancelled): lease_lost()
// turns true and the supervisor stops the trial. A heartbeat answer {"stop": true} turns
// stop_requested() true. Connection trouble is retried quietly: the lease outlives short outages,
// and a server restart keeps it. With a GpuReader, each heartbeat carries its GPUs' telemetry.
// push_*() and the flags are safe from any thread; flush_and_stop() from the owner only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/gpu_telemetry.h"
#include "worker/log_spool.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"

namespace gridexp {

class TrialHeartbeat final : public TrialLink {
 public:
  TrialHeartbeat(const std::string& base_url, const std::string& password, std::string trial_id,
                 std::string lease_token, std::chrono::milliseconds heartbeat_interval,
                 const std::filesystem::path& spool_directory,
                 std::uint64_t log_limit_bytes = kMaxLogBytesPerTrial, GpuReader gpu_reader = {});
  ~TrialHeartbeat() override;
  TrialHeartbeat(const TrialHeartbeat&) = delete;
  TrialHeartbeat& operator=(const TrialHeartbeat&) = delete;

  void push_metrics(nlohmann::json point) override;
  void push_log_line(const std::string& line) override;
  bool lease_lost() const override { return lease_lost_; }
  bool stop_requested() const override { return stop_requested_; }

  // Stops the thread, then sends what is still buffered, the log's cut mark included; it
  // stops at the first call that fails (no retries).
  void flush_and_stop() override;

 private:
  void run();
  enum class LogRound { kAllSent, kMoreToSend, kFailed };
  nlohmann::json heartbeat_body() const;
  void send_metrics();
  // Sends log chunks until none is left, one fails, or `deadline` has passed.
  LogRound send_log(std::chrono::steady_clock::time_point deadline);

  ServerConnection connection_;
  std::string trial_id_;
  std::string lease_token_;
  std::chrono::milliseconds heartbeat_interval_;
  GpuReader gpu_reader_;  // before thread_: the thread reads it
  std::atomic<bool> lease_lost_{false};
  std::atomic<bool> stop_requested_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<nlohmann::json> metrics_;
  LogSpool log_;
  std::thread thread_;
};

}  // namespace gridexp
