// The worker protocol (docs/protocol.md): registration, claims, and what a worker reports on
// the trial it holds the lease of: heartbeats, metrics, completion, failure, release, a
// preemption, a lost executor, log chunks, the model file (model_upload.cpp) and checkpoints
// (checkpoint_routes.cpp).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>

#include "common/file_system.h"
#include "common/gpu_sample.h"
#include "server/http_util.h"
#include "server/route_helpers.h"
#include "server/slurm_placement_check.h"

namespace gridexp {
namespace {

// The longest reason a preemption may give (docs/protocol.md, "Preempt").
constexpr std::size_t kMaxPreemptReasonBytes = 1024;

// A claim id (docs/protocol.md, "Claim"): the optional field `name` of `body`, 1 to 64
// letters, digits, '-' and '_'; empty when the field is missing.
Result<std::string> claim_id_field(const nlohmann::json& body, const char* name) {
  auto field = body.find(name);
  if (field == body.end()) return std::string();
  const bool valid_text = field->is_string() && !field->get_ref<const std::string&>().empty() &&
                          field->get_ref<const std::string&>().size() <= 64;
  if (valid_text) {
    const std::string& id = field->get_ref<const std::string&>();
    if (std::all_of(id.begin(), id.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
        })) {
      return id;
    }
  }
  return Status::invalid_argument(std::string("\"") + name +
                                  "\" must be a string of 1 to 64 letters, digits, '-' and '_'");
}

// The "claim_id" of a claim's body; empty without a body or the field.
Result<std::string> claim_id_of(const httplib::Request& request) {
  if (request.body.empty()) return std::string();
  Result<nlohmann::json> body = parse_json_object_body(request);
  if (!body) return body.status();
  return claim_id_field(*body, "claim_id");
}

// The body of a call on a leased trial, and the lease token it carries.
struct LeasedCall {
  nlohmann::json body;
  std::string lease_token;
};

Result<LeasedCall> parse_leased_call(const httplib::Request& request) {
  Result<nlohmann::json> body = parse_json_object_body(request);
  if (!body) return body.status();
  Result<std::string> token = string_field(*body, "lease_token");
  if (!token) return token.status();
  return LeasedCall{std::move(body).value(), std::move(token).value()};
}

// A metric point's "time_ms", when it is a number of milliseconds a TimeMs holds (converting
// 1e300 would be undefined behaviour).
std::optional<TimeMs> time_ms_field(const nlohmann::json& point) {
  auto field = point.find("time_ms");
  if (field == point.end()) return std::nullopt;
  if (field->is_number_integer()) return field->get<TimeMs>();
  if (field->is_number_float()) {
    double milliseconds = field->get<double>();
    if (std::isfinite(milliseconds) && std::abs(milliseconds) < 9e18) {
      return static_cast<TimeMs>(milliseconds);
    }
  }
  return std::nullopt;
}

// One point of a metrics report, dated `now_ms` unless it carries its own time; empty unless
// it has an object "values".
std::optional<MetricPoint> metric_point(const nlohmann::json& item, TimeMs now_ms) {
  if (!item.is_object() || !item.contains("values") || !item["values"].is_object()) {
    return std::nullopt;
  }
  MetricPoint point;
  point.values = item["values"];
  if (item.contains("step") && item["step"].is_number_integer()) {
    point.step = item["step"].get<std::int64_t>();
  }
  point.time_ms = time_ms_field(item).value_or(now_ms);
  return point;
}

// The answer to a claim (docs/protocol.md, "Claim"), counted in the metrics. A new attempt's
// claim first removes a model an earlier attempt left: it must not pass for this one's.
nlohmann::json claim_answer(ServerContext& context, const ClaimOutcome& outcome) {
  nlohmann::json trial = nullptr;
  if (outcome.lease && !outcome.resumed) ++context.metrics.claims;
  if (const std::optional<Lease>& lease = outcome.lease) {
    if (lease->attempt > 1 && !outcome.resumed) {
      std::lock_guard commit_lock(context.model_commit_mutex);
      ignore_outcome(default_file_system().remove(context.model_files.path_for(lease->trial_id)));
    }
    nlohmann::json checkpoint = nullptr;
    if (lease->checkpoint) {
      checkpoint = {{"step", optional_value(lease->checkpoint->step)},
                    {"size", lease->checkpoint->size_bytes},
                    {"sha256", lease->checkpoint->sha256},
                    {"kind", lease->checkpoint->kind},
                    {"attempt", lease->checkpoint->attempt}};
    }
    trial = {{"id", lease->trial_id},
             {"experiment", lease->experiment},
             {"hyperparameters", lease->hyperparameters},
             {"attempt", lease->attempt},
             {"lease_token", lease->lease_token},
             {"lease_expires_at", iso8601_utc(lease->lease_expires_ms)},
             {"resumed", outcome.resumed},
             {"checkpoint", std::move(checkpoint)}};
  }
  return {{"trial", trial},
          {"pending", outcome.pending},
          {"running", outcome.running},
          {"done", outcome.done},
          {"failed", outcome.failed},
          {"cancelled", outcome.cancelled},
          {"total",
           outcome.pending + outcome.running + outcome.done + outcome.failed + outcome.cancelled}};
}

void register_worker(ServerContext& context, const httplib::Request& request,
                     httplib::Response& response) {
  Result<nlohmann::json> body = parse_json_object_body(request);
  if (!body) return send_status_error(response, body.status());
  WorkerInfo info;
  info.host = optional_string_field(*body, "host");
  info.version = optional_string_field(*body, "version");
  if (auto pid = body->find("pid"); pid != body->end() && pid->is_number_integer()) {
    info.pid = pid->get<std::int64_t>();
  }
  if (auto devices = body->find("devices"); devices != body->end()) info.devices = *devices;
  if (auto slurm = body->find("slurm"); slurm != body->end() && !slurm->is_null()) {
    Result<nlohmann::json> placement = checked_slurm_placement(*slurm);
    if (!placement) return send_status_error(response, placement.status());
    info.slurm = std::move(placement).value();
  }
  if (info.host.empty()) info.host = request.remote_addr;
  Result<WorkerRecord> worker = context.store.register_worker(info);
  if (!worker) return send_status_error(response, worker.status());
  send_json(response, 201,
            {{"worker_id", worker->id},
             {"experiment_name", context.experiment_name},
             {"config", context.experiment_config},
             {"lease_seconds", context.lease_seconds},
             {"heartbeat_seconds", std::max(1, context.lease_seconds / 3)},
             {"server_version", context.version}});
}

void claim(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  Result<std::string> claim_id = claim_id_of(request);
  if (!claim_id) return send_status_error(response, claim_id.status());
  Result<ClaimOutcome> outcome = context.store.claim_next_trial(request.matches[1], *claim_id);
  if (!outcome) return send_status_error(response, outcome.status());
  send_json(response, 200, claim_answer(context, *outcome));
}

void heartbeat(ServerContext& context, const httplib::Request& request,
               httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  std::optional<std::vector<GpuSample>> gpus;
  if (auto field = call->body.find("gpus"); field != call->body.end()) {
    Result<std::vector<GpuSample>> parsed = parse_gpu_samples(*field);
    if (!parsed) return send_status_error(response, parsed.status());
    gpus = std::move(*parsed);
  }
  Result<HeartbeatReply> reply = context.store.heartbeat(request.matches[1], call->lease_token);
  if (!reply) return send_lease_error(response, reply.status());
  if (gpus) context.gpu_board.record(reply->worker_id, std::move(*gpus), context.clock.now_ms());
  send_json(response, 200,
            {{"lease_expires_at", iso8601_utc(reply->lease_expires_ms)},
             {"stop", reply->stop_requested}});
}

void report_metrics(ServerContext& context, const httplib::Request& request,
                    httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  auto points_field = call->body.find("points");
  if (points_field == call->body.end() || !points_field->is_array()) {
    return send_error(response, 400, "the body needs an array \"points\"");
  }
  std::vector<MetricPoint> points;
  for (const nlohmann::json& item : *points_field) {
    std::optional<MetricPoint> point = metric_point(item, context.clock.now_ms());
    if (!point) {
      return send_error(response, 400, "each point needs an object \"values\" of metric names",
                        item);
    }
    points.push_back(std::move(*point));
  }
  Status status = context.store.add_metrics(request.matches[1], call->lease_token, points);
  if (!status) return send_lease_error(response, status);
  send_ok(response);
}

// "peak_gpu_memory_bytes" of a completion (docs/protocol.md, "Complete"): optional, null or
// a non-negative integer.
Result<TrialMeasurements> measurements_field(const nlohmann::json& body) {
  TrialMeasurements measurements;
  auto peak = body.find("peak_gpu_memory_bytes");
  if (peak == body.end() || peak->is_null()) return measurements;
  const bool fits = peak->is_number_unsigned()
                        ? peak->get<std::uint64_t>() <= std::numeric_limits<std::int64_t>::max()
                        : peak->is_number_integer() && peak->get<std::int64_t>() >= 0;
  if (fits) {
    measurements.peak_gpu_memory_bytes = peak->get<std::int64_t>();
    return measurements;
  }
  return Status::invalid_argument("\"peak_gpu_memory_bytes\" must be a non-negative integer");
}

void complete(ServerContext& context, const httplib::Request& request,
              httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  if (!call->body.contains("results")) {
    return send_error(response, 400, "the body needs \"results\"");
  }
  const nlohmann::json& results = call->body["results"];
  Result<std::string> next_claim_id = claim_id_field(call->body, "next_claim_id");
  if (!next_claim_id) return send_status_error(response, next_claim_id.status());
  Result<TrialMeasurements> measurements = measurements_field(call->body);
  if (!measurements) return send_status_error(response, measurements.status());
  if (next_claim_id->empty()) {
    Status status =
        context.store.complete(request.matches[1], call->lease_token, results, *measurements);
    if (!status) return send_lease_error(response, status);
    ++context.metrics.completions;
    forget_done_checkpoint(context, request.matches[1]);
    return send_ok(response);
  }
  Result<ClaimOutcome> next = context.store.complete_and_claim(
      request.matches[1], call->lease_token, results, *measurements, *next_claim_id);
  if (!next) return send_lease_error(response, next.status());
  ++context.metrics.completions;
  forget_done_checkpoint(context, request.matches[1]);
  send_json(response, 200, {{"ok", true}, {"next", claim_answer(context, *next)}});
}

void fail(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  Result<std::string> error = string_field(call->body, "error");
  if (!error) return send_status_error(response, error.status());
  Result<TrialMeasurements> measurements = measurements_field(call->body);
  if (!measurements) return send_status_error(response, measurements.status());
  Status status = context.store.fail(request.matches[1], call->lease_token, *error,
                                     optional_string_field(call->body, "traceback"), *measurements);
  if (!status) return send_lease_error(response, status);
  ++context.metrics.failures;
  // A trial cancelled while it ran ends cancelled, not failed: say which, so a worker does not
  // stop on --raise_on_failure for a cancel it had not seen yet.
  Result<TrialRecord> ended = context.store.get_trial(request.matches[1]);
  send_json(
      response, 200,
      {{"ok", true}, {"state", ended ? to_string(ended->state) : to_string(TrialState::kFailed)}});
}

void release(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  Status status = context.store.release(request.matches[1], call->lease_token);
  if (!status) return send_lease_error(response, status);
  send_ok(response);
}

// The worker was stopped (SIGTERM, a preemption): the trial is pending again at once, the
// attempt recorded as preempted and not counted.
void preempt(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  std::string reason;
  if (auto field = call->body.find("reason"); field != call->body.end() && !field->is_null()) {
    if (!field->is_string() ||
        field->get_ref<const std::string&>().size() > kMaxPreemptReasonBytes) {
      return send_error(response, 400, "\"reason\" must be a string of at most 1 KiB");
    }
    reason = field->get<std::string>();
  }
  Result<TrialState> state = context.store.preempt(request.matches[1], call->lease_token, reason);
  if (!state) return send_lease_error(response, state.status());
  if (*state == TrialState::kPending) ++context.metrics.trials_preempted;
  send_json(response, 200, {{"ok", true}, {"state", to_string(*state)}});
}

// The worker's executor died by a signal mid-trial: the attempt is lost, the trial requeued.
void requeue_lost(ServerContext& context, const httplib::Request& request,
                  httplib::Response& response) {
  Result<LeasedCall> call = parse_leased_call(request);
  if (!call) return send_status_error(response, call.status());
  Result<std::string> reason = string_field(call->body, "reason");
  if (!reason) return send_status_error(response, reason.status());
  Result<TrialState> state =
      context.store.requeue_lost(request.matches[1], call->lease_token, *reason);
  if (!state) return send_lease_error(response, state.status());
  ++context.metrics.executors_lost;
  if (*state == TrialState::kFailed) ++context.metrics.failures;
  send_json(response, 200, {{"ok", true}, {"state", to_string(*state)}});
}

void append_log(ServerContext& context, const httplib::Request& request,
                httplib::Response& response) {
  std::string trial_id = request.matches[1];
  std::string lease_token = request.get_header_value("X-Gridexp-Lease-Token");
  if (lease_token.empty()) {
    return send_error(response, 400, "a log chunk needs the header X-Gridexp-Lease-Token");
  }
  if (Status lease = context.store.check_lease(trial_id, lease_token); !lease) {
    return send_lease_error(response, lease);
  }
  if (Status status = context.trial_logs.append(trial_id, request.body); !status) {
    return send_status_error(response, status);
  }
  send_ok(response);
}

}  // namespace

void install_worker_protocol(httplib::Server& server, ServerContext& context) {
  server.Post("/api/v1/workers", with_context(context, register_worker));
  server.Post(route("/api/v1/workers/", kWorkerIdPattern, "/claim"), with_context(context, claim));
  const std::string trial = route("/api/v1/trials/", kTrialIdPattern);
  server.Post(trial + "/heartbeat", with_context(context, heartbeat));
  server.Post(trial + "/metrics", with_context(context, report_metrics));
  server.Post(trial + "/complete", with_context(context, complete));
  server.Post(trial + "/fail", with_context(context, fail));
  server.Post(trial + "/release", with_context(context, release));
  server.Post(trial + "/preempt", with_context(context, preempt));
  server.Post(trial + "/lost", with_context(context, requeue_lost));
  server.Post(trial + "/log", with_context(context, append_log));
  server.Put(trial + "/model",
             [&context](const httplib::Request& request, httplib::Response& response,
                        const httplib::ContentReader& read_body) {
               receive_model(context, request, response, read_body);
             });
  server.Put(trial + "/checkpoint",
             [&context](const httplib::Request& request, httplib::Response& response,
                        const httplib::ContentReader& read_body) {
               receive_checkpoint(context, request, response, read_body);
             });
  server.Get(trial + "/checkpoint", with_context(context, send_checkpoint));
}

}  // namespace gridexp
