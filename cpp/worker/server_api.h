// ServerApi: what the worker's core asks of gridexp-server (docs/protocol.md), as an
// interface, so that the claim loop, a worker slot and delivery run against a fake server in
// tests. HttpServerApi is the real one: a ServerConnection, and a TrialHeartbeat per trial.
//
// TrialLink: the line that keeps one leased trial alive while it runs (TrialHeartbeat):
// metrics and log lines go out through it, and it says when the lease is lost or the server
// asks the trial to stop. push_*() and the flags are safe from any thread; flush_and_stop()
// from the owner only.
//
// A ServerApi is used by one thread at a time (like ServerConnection); each slot that runs
// trials at the same time needs its own.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/gpu_telemetry.h"
#include "worker/server_connection.h"

namespace gridexp {

class TrialLink {
 public:
  virtual ~TrialLink() = default;
  virtual void push_metrics(nlohmann::json point) = 0;
  virtual void push_log_line(const std::string& line) = 0;
  virtual bool lease_lost() const = 0;
  virtual bool stop_requested() const = 0;
  // Sends what is still buffered and stops; the link is idle afterwards.
  virtual void flush_and_stop() = 0;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class ServerApi {
 public:
  virtual ~ServerApi() = default;

  virtual Result<nlohmann::json> get_json(const std::string& path) = 0;
  virtual Result<nlohmann::json> post_json(const std::string& path, const nlohmann::json& body) = 0;
  // The same with the body already serialized (to know its size first).
  virtual Result<nlohmann::json> post_json_text(const std::string& path,
                                                const std::string& text) = 0;
  virtual Result<nlohmann::json> put_file(const std::string& path,
                                          const std::filesystem::path& file,
                                          const HttpHeaders& headers) = 0;
  // Streams the body of a GET into `destination`; the answer's headers (ServerConnection).
  virtual Result<HttpHeaders> get_file(const std::string& path, const HttpHeaders& headers,
                                       const std::filesystem::path& destination) = 0;
  // Starts keeping the lease of a claimed trial alive, every `interval`.
  virtual std::unique_ptr<TrialLink> start_heartbeat(const std::string& trial_id,
                                                     const std::string& lease_token,
                                                     std::chrono::milliseconds interval) = 0;
};

class HttpServerApi final : public ServerApi {
 public:
  // Heartbeats keep their unsent log lines in `spool_directory`.
  HttpServerApi(std::string base_url, std::string password, std::filesystem::path spool_directory);

  Result<nlohmann::json> get_json(const std::string& path) override;
  Result<nlohmann::json> post_json(const std::string& path, const nlohmann::json& body) override;
  Result<nlohmann::json> post_json_text(const std::string& path, const std::string& text) override;
  Result<nlohmann::json> put_file(const std::string& path, const std::filesystem::path& file,
                                  const HttpHeaders& headers) override;
  Result<HttpHeaders> get_file(const std::string& path, const HttpHeaders& headers,
                               const std::filesystem::path& destination) override;
  std::unique_ptr<TrialLink> start_heartbeat(const std::string& trial_id,
                                             const std::string& lease_token,
                                             std::chrono::milliseconds interval) override;
  // Heartbeats started from now on carry what `reader` reads ("gpus"). Not thread-safe with
  // start_heartbeat(): set it before the first trial.
  void set_gpu_reader(GpuReader reader) { gpu_reader_ = std::move(reader); }

 private:
  std::string base_url_;
  std::string password_;
  std::filesystem::path spool_directory_;
  GpuReader gpu_reader_;
  ServerConnection connection_;
};

// The API path of one action on a trial: /api/v1/trials/<id>/<action>.
std::string trial_path(const std::string& trial_id, const char* action);

}  // namespace gridexp
