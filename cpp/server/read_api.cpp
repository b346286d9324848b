// The read API (docs/api.md): health, experiments, trials (JSON with an ETag, and CSV), one
// trial with its metrics, model file and log, the workers, the config, and the experiment's
// scripts and data archives.
#include <fstream>
#include <sstream>

#include "server/http_util.h"
#include "server/route_helpers.h"

namespace gridexp {
namespace {

void list_experiments(ServerContext& context, httplib::Response& response) {
  Result<std::vector<ExperimentSummary>> experiments = context.store.list_experiments();
  if (!experiments) return send_status_error(response, experiments.status());
  Result<std::int64_t> online = count_workers_online(context);
  if (!online) return send_status_error(response, online.status());
  TimeMs now = context.clock.now_ms();
  nlohmann::json body = nlohmann::json::array();
  for (const ExperimentSummary& experiment : *experiments) {
    body.push_back(experiment_to_json(experiment, now));
    body.back()["workers_online"] = *online;
  }
  send_json(response, 200, body);
}

// The trials of the experiment named in the path, handed to `respond`; 404 for an unknown
// experiment.
template <typename Respond>
void with_trials(ServerContext& context, const httplib::Request& request,
                 httplib::Response& response, Respond&& respond) {
  std::string name = request.matches[1];
  if (Status known = require_experiment(context, name); !known) {
    return send_status_error(response, known);
  }
  Result<std::vector<TrialRecord>> trials = context.store.list_trials(name);
  if (!trials) return send_status_error(response, trials.status());
  respond(*trials);
}

void list_trials(ServerContext& context, const httplib::Request& request,
                 httplib::Response& response) {
  // Read before the trials: a change while they are read gives a newer ETag next time, never
  // an old ETag for newer trials.
  std::string etag =
      "\"" + context.state_epoch + "-" + std::to_string(context.state_version.load()) + "\"";
  response.set_header("ETag", etag);
  response.set_header("Cache-Control", "no-cache");
  if (request.get_header_value("If-None-Match") == etag) {
    response.status = 304;
    return;
  }
  with_trials(context, request, response, [&](const std::vector<TrialRecord>& trials) {
    nlohmann::json body = nlohmann::json::array();
    for (const TrialRecord& trial : trials) body.push_back(trial_to_json(trial));
    send_json(response, 200, body);
  });
}

void export_trials_csv(ServerContext& context, const httplib::Request& request,
                       httplib::Response& response) {
  with_trials(context, request, response, [&](const std::vector<TrialRecord>& trials) {
    response.set_header("Content-Disposition",
                        attachment_disposition(std::string(request.matches[1]) + ".csv"));
    response.set_content(trials_to_csv(trials), "text/csv; charset=utf-8");
  });
}

void get_trial(ServerContext& context, const httplib::Request& request,
               httplib::Response& response) {
  Result<TrialRecord> trial = context.store.get_trial(request.matches[1]);
  if (!trial) return send_status_error(response, trial.status());
  send_json(response, 200, trial_to_json(*trial));
}

void list_metrics(ServerContext& context, const httplib::Request& request,
                  httplib::Response& response) {
  send_json_array(response, context.store.list_metrics(request.matches[1]), metric_point_to_json);
}

void download_model(ServerContext& context, const httplib::Request& request,
                    httplib::Response& response) {
  std::string trial_id = request.matches[1];
  Result<TrialRecord> trial = context.store.get_trial(trial_id);
  if (!trial) return send_status_error(response, trial.status());
  if (!trial->model) return send_error(response, 404, "trial " + trial_id + " has no model file");
  serve_file(request, response,
             {context.model_files.path_for(trial_id), trial->model->sha256,
              "application/octet-stream", trial_id + ".pt"});
}

void get_log(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  std::string trial_id = request.matches[1];
  Result<TrialRecord> trial = context.store.get_trial(trial_id);
  if (!trial) return send_status_error(response, trial.status());
  std::filesystem::path path = context.trial_logs.path_for(trial_id);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return send_error(response, 404, "trial " + trial_id + " has no log yet");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  response.set_content(text.str(), "text/plain; charset=utf-8");
}

void list_workers(ServerContext& context, httplib::Response& response) {
  Result<std::vector<WorkerRecord>> workers = context.store.list_workers();
  TimeMs now = context.clock.now_ms();
  send_json_array(response, workers, [&](const WorkerRecord& worker) {
    nlohmann::json json = worker_to_json(worker, now, online_window_ms(context));
    json["gpus"] =
        gpu_samples_json(context.gpu_board.of(worker.id, now, online_window_ms(context)));
    return json;
  });
}

httplib::Server::Handler serve_archive(Result<FileToServe> (ExperimentFiles::*which)(),
                                       ExperimentFiles& files) {
  return [which, &files](const httplib::Request& request, httplib::Response& response) {
    Result<FileToServe> file = (files.*which)();
    if (!file) return send_status_error(response, file.status());
    serve_file(request, response, *file);
  };
}

}  // namespace

TimeMs online_window_ms(const ServerContext& context) {
  return std::max<TimeMs>(15'000, static_cast<TimeMs>(context.lease_seconds) * 1000);
}

Status require_experiment(ServerContext& context, const std::string& name) {
  Result<std::vector<ExperimentSummary>> experiments = context.store.list_experiments();
  if (!experiments) return experiments.status();
  for (const ExperimentSummary& experiment : *experiments) {
    if (experiment.name == name) return Status::ok();
  }
  return Status::not_found("no experiment named '" + name + "'");
}

Result<std::int64_t> count_workers_online(ServerContext& context) {
  Result<std::vector<WorkerRecord>> workers = context.store.list_workers();
  if (!workers) return workers.status();
  TimeMs now = context.clock.now_ms();
  std::int64_t online = 0;
  for (const WorkerRecord& worker : *workers) {
    online += now - worker.last_seen_ms <= online_window_ms(context) ? 1 : 0;
  }
  return online;
}

void install_read_api(httplib::Server& server, ServerContext& context) {
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    send_json(response, 200, {{"status", "ok"}});
  });
  server.Get("/api/v1/experiments",
             [&context](const httplib::Request&, httplib::Response& response) {
               list_experiments(context, response);
             });
  server.Get(R"(/api/v1/experiments/(.+)/trials)", with_context(context, list_trials));
  server.Get(R"(/api/v1/experiments/(.+)/trials\.csv)", with_context(context, export_trials_csv));
  const std::string trial = route("/api/v1/trials/", kTrialIdPattern);
  server.Get(trial, with_context(context, get_trial));
  server.Get(trial + "/metrics", with_context(context, list_metrics));
  server.Get(trial + "/model", with_context(context, download_model));
  server.Get("/api/v1/config", [&context](const httplib::Request&, httplib::Response& response) {
    send_json(
        response, 200,
        {{"experiment_name", context.experiment_name}, {"config", context.experiment_config}});
  });
  server.Get(trial + "/log", with_context(context, get_log));
  server.Get("/api/v1/workers", [&context](const httplib::Request&, httplib::Response& response) {
    list_workers(context, response);
  });
  server.Get("/api/v1/files/scripts.zip",
             serve_archive(&ExperimentFiles::scripts_zip, context.experiment_files));
  server.Get("/api/v1/files/data.zip",
             serve_archive(&ExperimentFiles::data_zip, context.experiment_files));
}

}  // namespace gridexp
