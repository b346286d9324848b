// The user's actions on trials (retry, cancel, one or many), the attempt history, and
// GET /metrics — see docs/api.md, "Actions" and "/metrics".
#include <string>
#include <vector>

#include "common/file_system.h"
#include "server/http_util.h"
#include "server/route_helpers.h"

namespace gridexp {
namespace {

enum class Action { kRetry, kCancel };

Result<std::vector<std::string>> apply(ServerContext& context, Action action,
                                       const TrialSelection& selection) {
  if (action == Action::kCancel) return context.store.cancel_trials(selection);
  // Held across the retry and the removals: a new attempt cannot claim, upload and commit
  // its model in between (its commit takes the same lock), only for it to be removed here.
  std::lock_guard commit_lock(context.model_commit_mutex);
  Result<std::vector<std::string>> retried = context.store.retry_trials(selection);
  if (retried) {
    // Their earlier model files would otherwise linger on disk without a trial to own them.
    for (const std::string& id : *retried) {
      ignore_outcome(default_file_system().remove(context.model_files.path_for(id)));
    }
  }
  return retried;
}

// Why `action` does not apply to `trial`, for the 409 answer.
std::string why_not(Action action, const TrialRecord& trial) {
  std::string state = to_string(trial.state);
  if (action == Action::kRetry) {
    if (!trial.in_config) return "trial " + trial.id + " is no longer in the config";
    return "only a failed or cancelled trial can be retried; trial " + trial.id + " is " + state;
  }
  if (trial.stop_requested) return "trial " + trial.id + " is already being cancelled";
  return "only a pending or running trial can be cancelled; trial " + trial.id + " is " + state;
}

void act_on_one_trial(ServerContext& context, Action action, const httplib::Request& request,
                      httplib::Response& response) {
  Result<TrialRecord> trial = context.store.get_trial(request.matches[1]);
  if (!trial) return send_status_error(response, trial.status());
  Result<std::vector<std::string>> changed =
      apply(context, action, {trial->experiment, std::vector<std::string>{trial->id}});
  if (!changed) return send_status_error(response, changed.status());
  if (changed->empty()) return send_error(response, 409, why_not(action, *trial));
  Result<TrialRecord> now = context.store.get_trial(trial->id);
  if (!now) return send_status_error(response, now.status());
  send_json(response, 200, trial_to_json(*now));
}

void act_on_many_trials(ServerContext& context, Action action, const httplib::Request& request,
                        httplib::Response& response) {
  TrialSelection selection{request.matches[1], std::nullopt};
  if (Status known = require_experiment(context, selection.experiment); !known) {
    return send_status_error(response, known);
  }
  if (!request.body.empty()) {
    Result<nlohmann::json> body = parse_json_object_body(request);
    if (!body) return send_status_error(response, body.status());
    if (auto ids = body->find("ids"); ids != body->end()) {
      if (!ids->is_array()) return send_error(response, 400, "\"ids\" must be a list of trial ids");
      selection.ids.emplace();
      for (const nlohmann::json& id : *ids) {
        if (!id.is_string()) return send_error(response, 400, "\"ids\" must hold strings");
        selection.ids->push_back(id.get<std::string>());
      }
    }
  }
  Result<std::vector<std::string>> changed = apply(context, action, selection);
  if (!changed) return send_status_error(response, changed.status());
  send_json(response, 200, {{"changed", *changed}});
}

void list_attempts(ServerContext& context, const httplib::Request& request,
                   httplib::Response& response) {
  send_json_array(response, context.store.list_attempts(request.matches[1]), attempt_to_json);
}

void render_metrics(ServerContext& context, const httplib::Request&, httplib::Response& response) {
  Result<std::vector<ExperimentSummary>> experiments = context.store.list_experiments();
  if (!experiments) return send_status_error(response, experiments.status());
  Result<std::int64_t> online = count_workers_online(context);
  if (!online) return send_status_error(response, online.status());
  TimeMs now = context.clock.now_ms();
  response.set_content(
      context.metrics.render(*experiments, *online, context.store.stats()) +
          render_gpu_metrics(context.gpu_board.current(now, online_window_ms(context))),
      "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

void install_action_routes(httplib::Server& server, ServerContext& context) {
  const std::string trial = route("/api/v1/trials/", kTrialIdPattern);
  for (auto [suffix, route_action] :
       {std::pair{"/retry", Action::kRetry}, std::pair{"/cancel", Action::kCancel}}) {
    // A copy for the lambdas: clang before 16 (Debian 12's 14) cannot capture a structured
    // binding, and the fuzz targets are built with clang.
    const Action action = route_action;
    server.Post(trial + suffix,
                [&context, action](const httplib::Request& request, httplib::Response& response) {
                  act_on_one_trial(context, action, request, response);
                });
    server.Post(std::string(R"(/api/v1/experiments/(.+))") + suffix,
                [&context, action](const httplib::Request& request, httplib::Response& response) {
                  act_on_many_trials(context, action, request, response);
                });
  }

  server.Get(trial + "/attempts", with_context(context, list_attempts));
  server.Get("/metrics", with_context(context, render_metrics));
}

}  // namespace gridexp
