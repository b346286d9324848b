// Routes: the HTTP API — the authentication gate, the read API (docs/api.md), the worker
// protocol (docs/protocol.md), the user's actions, /metrics and the dashboard — mapped onto
// the Store, ModelFiles, CheckpointFiles and ExperimentFiles. One file each: request_gate.cpp,
// read_api.cpp (with api_json.cpp, the JSON shapes), worker_protocol.cpp (with model_upload.cpp
// and checkpoint_routes.cpp),
// action_routes.cpp, dashboard_routes.cpp; route_helpers.h holds what they share.
//
// Every route except GET /healthz and POST /api/v1/session (the login) requires the
// password, as an Authorization header or a dashboard session cookie; the gate runs before
// any body is read. Before the password, it refuses a body it could not read safely: no
// Content-Length (411), a length that is not a number (400); after it (before it for the
// login and /healthz), a body over its route's limit (413; 400 for a GET's). Every JSON body is
// parsed by parse_json (common/json_parse.h): malformed, out-of-range or too deeply nested JSON is
// a 400. Handlers run concurrently on HttpServer's threads (http_server.h); everything they share
// is either thread-safe (Store, ExperimentFiles, ModelFiles, CheckpointFiles, Sessions,
// ServerMetrics, atomics) or
// immutable after start-up.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "server/checkpoint_files.h"
#include "server/experiment_files.h"
#include "server/gpu_board.h"
#include "server/login_throttle.h"
#include "server/model_files.h"
#include "server/server_metrics.h"
#include "server/sessions.h"
#include "server/store.h"
#include "server/trial_logs.h"

namespace gridexp {

struct ServerContext {
  ServerContext(Store& store_in, ExperimentFiles& files_in, ModelFiles& models_in,
                CheckpointFiles& checkpoints_in, TrialLogs& logs_in, const Clock& clock_in)
      : store(store_in),
        experiment_files(files_in),
        model_files(models_in),
        checkpoint_files(checkpoints_in),
        trial_logs(logs_in),
        clock(clock_in),
        sessions(clock_in, kSessionLifetimeMs),
        login_throttle(clock_in),
        state_epoch(std::to_string(clock_in.now_ms())) {}

  static constexpr TimeMs kSessionLifetimeMs = 7LL * 24 * 3600 * 1000;

  Store& store;
  ExperimentFiles& experiment_files;
  ModelFiles& model_files;
  CheckpointFiles& checkpoint_files;
  TrialLogs& trial_logs;
  const Clock& clock;
  std::string password;
  nlohmann::json experiment_config;  // the config's top level, handed to workers
  std::string experiment_name;
  int lease_seconds = 30;
  std::uint64_t max_upload_bytes = 0;
  std::string version;
  // Serializes "lease still held? then rename the model into place and record it".
  std::mutex model_commit_mutex;
  Sessions sessions;
  LoginThrottle login_throttle;
  ServerMetrics metrics;
  GpuBoard gpu_board;                              // GPU telemetry from heartbeats
  std::optional<std::filesystem::path> plotly_js;  // absent: the dashboard has no plots
  // Bumped by every change of state (a successful POST/PUT/DELETE, a lease requeued): with
  // state_epoch (the start time) it is the ETag of the trials list.
  std::atomic<std::uint64_t> state_version{0};
  const std::string state_epoch;
};

void install_routes(httplib::Server& server, ServerContext& context);
// Parts of install_routes, each in its own file, installed in this order.
void install_request_gate(httplib::Server& server, ServerContext& context);
void install_read_api(httplib::Server& server, ServerContext& context);
void install_worker_protocol(httplib::Server& server, ServerContext& context);
void install_action_routes(httplib::Server& server, ServerContext& context);
void install_dashboard_routes(httplib::Server& server, ServerContext& context);

// Workers seen within this long count as online.
TimeMs online_window_ms(const ServerContext& context);
Result<std::int64_t> count_workers_online(ServerContext& context);
// kNotFound ("no experiment named '…'") unless the store knows the experiment.
Status require_experiment(ServerContext& context, const std::string& name);

// The largest body a request to `method` `path` may carry (docs/api.md, "Request bodies"):
// none for GET and the other methods without a body, `max_upload_bytes` for a model or
// checkpoint upload,
// 4 KiB for the login, up to 64 MiB for what a trial reports. The gate refuses a longer one
// before reading it.
std::uint64_t max_request_body_bytes(const std::string& method, const std::string& path,
                                     std::uint64_t max_upload_bytes);

// The dashboard session token a request's Cookie header carries, or "".
std::string session_cookie(const httplib::Request& request);

// JSON shapes of the read API, shared with tests.
nlohmann::json trial_to_json(const TrialRecord& trial);
// `now_ms` dates the estimate of the time to completion.
nlohmann::json experiment_to_json(const ExperimentSummary& experiment, TimeMs now_ms);
// Seconds until no trial is pending or running: what is left of the work (pending trials at
// the mean duration of done ones, running ones at what is left of it) over the trials
// running now (at least one). Empty before any trial is done; 0 once nothing is left.
std::optional<double> estimate_seconds_left(const ExperimentSummary& experiment, TimeMs now_ms);
nlohmann::json worker_to_json(const WorkerRecord& worker, TimeMs now_ms, TimeMs online_window_ms);
nlohmann::json metric_point_to_json(const MetricPoint& point);
nlohmann::json attempt_to_json(const AttemptRecord& attempt);
std::string trials_to_csv(const std::vector<TrialRecord>& trials);

}  // namespace gridexp
