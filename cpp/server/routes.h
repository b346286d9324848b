// Routes: the HTTP API — the authentication gate, the read API (docs/api.md) and the worker
// protocol (docs/protocol.md) — mapped onto the Store, ModelFiles and ExperimentFiles.
//
// Every route except GET /healthz requires the password; the gate runs before any body is
// read. Handlers run concurrently on httplib's thread pool; everything they share is either
// thread-safe (Store, ExperimentFiles, ModelFiles) or immutable after start-up.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "server/experiment_files.h"
#include "server/model_files.h"
#include "server/store.h"
#include "server/trial_logs.h"

namespace gridexp {

struct ServerContext {
  ServerContext(Store& store_in, ExperimentFiles& files_in, ModelFiles& models_in,
                TrialLogs& logs_in, const Clock& clock_in)
      : store(store_in),
        experiment_files(files_in),
        model_files(models_in),
        trial_logs(logs_in),
        clock(clock_in) {}

  Store& store;
  ExperimentFiles& experiment_files;
  ModelFiles& model_files;
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
};

void install_routes(httplib::Server& server, ServerContext& context);

// JSON shapes of the read API, shared with tests.
nlohmann::json trial_to_json(const TrialRecord& trial);
nlohmann::json experiment_to_json(const ExperimentSummary& experiment);
std::string trials_to_csv(const std::vector<TrialRecord>& trials);

}  // namespace gridexp
