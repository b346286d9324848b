#include "server/routes.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/auth.h"
#include "server/dashboard_files.h"
#include "server/http_util.h"

namespace gridexp {
namespace {

constexpr char kTrialId[] = "([0-9a-f]{16})";
constexpr char kWorkerId[] = "([A-Za-z0-9_-]{1,64})";
// Request bodies by route (docs/api.md, "Request bodies"); model files have their own limit,
// --max-upload-mb. The login is the one body read before the password is known.
constexpr std::uint64_t kMaxLoginBodyBytes = 4 << 10;
// Claims, heartbeats, releases, the actions on one trial, anything else: a small JSON object.
constexpr std::uint64_t kMaxSmallBodyBytes = 64 << 10;
// A worker's registration: its host and devices.
constexpr std::uint64_t kMaxWorkerBodyBytes = 1 << 20;
// An action on chosen trials of an experiment: their ids.
constexpr std::uint64_t kMaxSelectionBodyBytes = 16 << 20;
// What a trial reports: its results, failure (with traceback), metrics and log chunks.
constexpr std::uint64_t kMaxReportBodyBytes = 64 << 20;

std::string route(const std::string& prefix, const char* id, const std::string& suffix = "") {
  return prefix + id + suffix;
}

nlohmann::json optional_time(const std::optional<TimeMs>& time) {
  return time ? nlohmann::json(iso8601_utc(*time)) : nlohmann::json(nullptr);
}

template <typename T>
nlohmann::json optional_value(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// A required string field of a request body.
Result<std::string> string_field(const nlohmann::json& body, const char* name) {
  auto field = body.find(name);
  if (field == body.end() || !field->is_string() || field->get_ref<const std::string&>().empty()) {
    return Status::invalid_argument(std::string("the body needs a non-empty string \"") + name +
                                    "\"");
  }
  return field->get<std::string>();
}

std::string optional_string_field(const nlohmann::json& body, const char* name) {
  auto field = body.find(name);
  return field != body.end() && field->is_string() ? field->get<std::string>() : std::string();
}

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

// Parses the body and the lease token every trial call carries; on failure answers 400.
bool parse_leased_call(const httplib::Request& request, httplib::Response& response,
                       nlohmann::json* body, std::string* lease_token) {
  Result<nlohmann::json> parsed = parse_json_object_body(request);
  if (!parsed) {
    send_status_error(response, parsed.status());
    return false;
  }
  Result<std::string> token = string_field(*parsed, "lease_token");
  if (!token) {
    send_status_error(response, token.status());
    return false;
  }
  *body = std::move(parsed).value();
  *lease_token = std::move(token).value();
  return true;
}

void send_lease_error(httplib::Response& response, const Status& status) {
  nlohmann::json detail = nullptr;
  if (status.code() == Code::kConflict) detail = {{"stop", true}};
  send_error(response, http_status_for(status.code()), status.message(), detail);
}

void send_ok(httplib::Response& response) { send_json(response, 200, {{"ok", true}}); }

// Closes the connection after a refusal that left a request body unread, so the unread bytes
// are never parsed as the next request.
void refuse_unread_body(httplib::Response& response, const Status& status) {
  response.set_header("Connection", "close");
  send_lease_error(response, status);
}

// The request's Content-Length: empty when it has none or it is not a decimal number of bytes
// that fits 64 bits (the gate refuses such a request before any handler runs).
std::optional<std::uint64_t> content_length(const httplib::Request& request) {
  if (!request.has_header("Content-Length")) return std::nullopt;
  std::string text = request.get_header_value("Content-Length");
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The methods whose bodies cpp-httplib reads (it leaves a GET's unread, to pass for the next
// request).
bool method_takes_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
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

std::string describe_bytes(std::uint64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1 << 10) && bytes % (1 << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

void flatten_scalars(const std::string& prefix, const nlohmann::json& value,
                     std::map<std::string, nlohmann::json>* out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      flatten_scalars(prefix.empty() ? key : prefix + "." + key, item, out);
    }
  } else if (!value.is_array() && !prefix.empty()) {
    (*out)[prefix] = value;
  }
}

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string csv_value(const nlohmann::json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return csv_cell(value.get<std::string>());
  return csv_cell(value.dump());
}

}  // namespace

nlohmann::json trial_to_json(const TrialRecord& trial) {
  nlohmann::json model = nullptr;
  if (trial.model) model = {{"sha256", trial.model->sha256}, {"size", trial.model->size_bytes}};
  return {
      {"id", trial.id},
      {"experiment", trial.experiment},
      {"grid_index", trial.grid_index},
      {"in_config", trial.in_config},
      {"state", to_string(trial.state)},
      {"hyperparameters", trial.hyperparameters},
      {"results", trial.results},
      {"attempts", trial.attempts},
      {"worker", optional_value(trial.worker_id)},
      {"started_at", optional_time(trial.started_ms)},
      {"finished_at", optional_time(trial.finished_ms)},
      {"lease_expires_at",
       trial.state == TrialState::kRunning ? optional_time(trial.lease_expires_ms) : nullptr},
      {"error", optional_value(trial.error)},
      {"traceback", optional_value(trial.traceback)},
      {"model", model},
      {"stop_requested", trial.stop_requested},
  };
}

std::optional<double> estimate_seconds_left(const ExperimentSummary& experiment, TimeMs now_ms) {
  if (experiment.pending == 0 && experiment.running == 0) return 0.0;
  if (!experiment.mean_done_ms) return std::nullopt;
  double mean_ms = *experiment.mean_done_ms;
  double left_ms = static_cast<double>(experiment.pending) * mean_ms;
  for (TimeMs started_ms : experiment.running_started_ms) {
    left_ms += std::max(0.0, mean_ms - static_cast<double>(now_ms - started_ms));
  }
  double parallel = static_cast<double>(std::max<std::int64_t>(1, experiment.running));
  return left_ms / parallel / 1000.0;
}

nlohmann::json experiment_to_json(const ExperimentSummary& experiment, TimeMs now_ms) {
  std::optional<double> mean_seconds;
  if (experiment.mean_done_ms) mean_seconds = *experiment.mean_done_ms / 1000.0;
  return {{"name", experiment.name},
          {"active", experiment.active},
          {"total", experiment.total()},
          {"counts",
           {{"pending", experiment.pending},
            {"running", experiment.running},
            {"done", experiment.done},
            {"failed", experiment.failed},
            {"cancelled", experiment.cancelled}}},
          {"mean_duration_seconds", optional_value(mean_seconds)},
          {"eta_seconds", optional_value(estimate_seconds_left(experiment, now_ms))}};
}

nlohmann::json worker_to_json(const WorkerRecord& worker, TimeMs now_ms, TimeMs online_window) {
  return {{"id", worker.id},
          {"host", worker.info.host},
          {"pid", worker.info.pid},
          {"devices", worker.info.devices},
          {"version", worker.info.version},
          {"first_seen", iso8601_utc(worker.first_seen_ms)},
          {"last_seen", iso8601_utc(worker.last_seen_ms)},
          {"current_trial", optional_value(worker.current_trial)},
          {"trials_done", worker.trials_done},
          {"trials_failed", worker.trials_failed},
          {"online", now_ms - worker.last_seen_ms <= online_window}};
}

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

std::uint64_t max_request_body_bytes(const std::string& method, const std::string& path,
                                     std::uint64_t max_upload_bytes) {
  if (method == "PUT" && path.ends_with("/model")) return max_upload_bytes;
  if (!method_takes_body(method)) return 0;
  if (method != "POST") return kMaxSmallBodyBytes;
  if (path == "/api/v1/session") return kMaxLoginBodyBytes;
  if (path == "/api/v1/workers") return kMaxWorkerBodyBytes;
  if (path.starts_with("/api/v1/trials/")) {
    for (const char* report : {"/complete", "/fail", "/metrics", "/log"}) {
      if (path.ends_with(report)) return kMaxReportBodyBytes;
    }
    return kMaxSmallBodyBytes;
  }
  if (path.starts_with("/api/v1/experiments/")) return kMaxSelectionBodyBytes;
  return kMaxSmallBodyBytes;
}

std::string trials_to_csv(const std::vector<TrialRecord>& trials) {
  static const std::vector<std::string> kFixed = {"id",         "state",       "attempts", "worker",
                                                  "started_at", "finished_at", "error"};
  std::vector<std::map<std::string, nlohmann::json>> hyperparameters(trials.size());
  std::vector<std::map<std::string, nlohmann::json>> results(trials.size());
  std::set<std::string> hyperparameter_columns;
  std::set<std::string> result_columns;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    for (const auto& [key, value] : trials[i].hyperparameters.items()) {
      hyperparameters[i][key] = value;
      hyperparameter_columns.insert(key);
    }
    flatten_scalars("", trials[i].results, &results[i]);
    for (const auto& entry : results[i]) result_columns.insert(entry.first);
  }
  // A hyperparameter named like a fixed column, or a result named like either, is told apart
  // by a prefix, so every header is unique.
  std::set<std::string> taken(kFixed.begin(), kFixed.end());
  std::map<std::string, std::string> hyperparameter_headers;
  for (const std::string& key : hyperparameter_columns) {
    hyperparameter_headers[key] = taken.count(key) ? "hyperparameters." + key : key;
  }
  for (const auto& entry : hyperparameter_headers) taken.insert(entry.second);
  auto result_header = [&](const std::string& key) {
    return taken.count(key) ? "results." + key : key;
  };

  std::string csv;
  for (const std::string& column : kFixed) csv += csv_cell(column) + ",";
  for (const std::string& column : hyperparameter_columns) {
    csv += csv_cell(hyperparameter_headers[column]) + ",";
  }
  for (const std::string& column : result_columns) csv += csv_cell(result_header(column)) + ",";
  csv.back() = '\n';
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const TrialRecord& trial = trials[i];
    csv += trial.id + "," + to_string(trial.state) + "," + std::to_string(trial.attempts) + ",";
    csv += csv_cell(trial.worker_id.value_or("")) + ",";
    csv += (trial.started_ms ? iso8601_utc(*trial.started_ms) : "") + ",";
    csv += (trial.finished_ms ? iso8601_utc(*trial.finished_ms) : "") + ",";
    csv += csv_cell(trial.error.value_or(""));
    for (const std::string& column : hyperparameter_columns) {
      auto value = hyperparameters[i].find(column);
      csv += "," + (value == hyperparameters[i].end() ? "" : csv_value(value->second));
    }
    for (const std::string& column : result_columns) {
      auto value = results[i].find(column);
      csv += "," + (value == results[i].end() ? "" : csv_value(value->second));
    }
    csv += "\n";
  }
  return csv;
}

namespace {

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
    trial = {{"id", lease->trial_id},
             {"experiment", lease->experiment},
             {"hyperparameters", lease->hyperparameters},
             {"attempt", lease->attempt},
             {"lease_token", lease->lease_token},
             {"lease_expires_at", iso8601_utc(lease->lease_expires_ms)},
             {"resumed", outcome.resumed}};
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

// When this thread began answering its current request (0: no request).
thread_local std::chrono::steady_clock::time_point request_started{};

bool changes_state(const std::string& method) { return method != "GET" && method != "HEAD"; }

// True for a browser request made by a page of another origin (a form posted from elsewhere
// carries the user's Basic credentials or cookie along). Browsers say so in Sec-Fetch-Site
// and Origin; workers, curl and scripts send neither.
bool comes_from_another_site(const httplib::Request& request) {
  // Sec-Fetch-Site first: it survives a reverse proxy that rewrites Host.
  if (request.has_header("Sec-Fetch-Site")) {
    std::string fetch_site = request.get_header_value("Sec-Fetch-Site");
    return fetch_site == "cross-site" || fetch_site == "same-site";
  }
  if (!request.has_header("Origin")) return false;
  std::string origin = request.get_header_value("Origin");
  std::size_t scheme_end = origin.find("://");
  if (scheme_end == std::string::npos) return true;  // "null" and the like
  return origin.substr(scheme_end + 3) != request.get_header_value("Host");
}

void answer_unauthenticated(const httplib::Request& request, httplib::Response& response) {
  response.set_header("Connection", "close");
  // A browser opening the dashboard gets the login form, not a Basic prompt; the form holds
  // nothing of the experiment.
  bool page = request.method == "GET" && (request.path == "/" || request.path == "/index.html");
  std::optional<std::string_view> login = find_dashboard_file("login.html");
  if (page && login && request.get_header_value("Accept").find("text/html") != std::string::npos) {
    response.status = 401;
    response.set_header("Cache-Control", "no-store");
    response.set_content(std::string(*login), "text/html; charset=utf-8");
    return;
  }
  response.set_header("WWW-Authenticate", "Basic realm=\"gridexp\", charset=\"UTF-8\"");
  send_error(response, 401,
             request.has_header("Authorization")
                 ? "wrong password"
                 : "this server needs its password: Authorization: Bearer <password>");
}

// httplib compresses text and JSON answers with Brotli whenever a client accepts it (every
// browser does), at Brotli's slowest quality: 3.4 s for a 3 MB trials list that gzip
// compresses in 0.03 s. Hiding "br" from httplib makes it choose gzip. httplib owns the
// request object (it is not const), and nothing else reads the header.
void prefer_gzip_over_brotli(const httplib::Request& request) {
  auto accepted = request.headers.find("Accept-Encoding");
  if (accepted == request.headers.end() || accepted->second.find("br") == std::string::npos) {
    return;
  }
  std::string kept;
  std::size_t at = 0;
  while (at <= accepted->second.size()) {
    std::size_t end = accepted->second.find(',', at);
    if (end == std::string::npos) end = accepted->second.size();
    std::string coding = accepted->second.substr(at, end - at);
    coding.erase(0, coding.find_first_not_of(' '));
    if (!coding.empty() && !coding.starts_with("br")) kept += (kept.empty() ? "" : ", ") + coding;
    at = end + 1;
  }
  auto& headers = const_cast<httplib::Request&>(request).headers;
  headers.erase("Accept-Encoding");
  headers.emplace("Accept-Encoding", kept);
}

// Answers `status` with `message`, closing the connection: the unread body must never pass
// for a request. Returns true, for the refuse_* functions below.
bool refuse_body(httplib::Response& response, int status, const std::string& message) {
  response.set_header("Connection", "close");
  send_error(response, status, message);
  return true;
}

// Refuses a request whose body cannot be read safely, before the password is looked at:
// cpp-httplib would read a body without a length (or chunked) until the client stops, past
// every limit. Only a model upload may stream chunked (ModelUpload enforces its limit). A
// request without a length and without Transfer-Encoding has no body (RFC 9112, 6.3): a POST,
// PUT or PATCH gets 411, a DELETE is read as an empty body. Returns whether it answered.
bool refuse_unframed_body(const httplib::Request& request, httplib::Response& response) {
  bool model_upload = request.method == "PUT" && request.path.ends_with("/model");
  if (request.has_header("Transfer-Encoding")) {
    return !model_upload &&
           refuse_body(response, 411, "send the body with a Content-Length (not chunked)");
  }
  std::size_t lengths = request.get_header_value_count("Content-Length");
  if (lengths == 0) {
    if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
      return refuse_body(response, 411,
                         "a " + request.method + " needs a Content-Length (0 for no body)");
    }
    // httplib owns the request object (it is not const); it reads no body of length 0.
    if (method_takes_body(request.method)) {
      const_cast<httplib::Request&>(request).set_header("Content-Length", "0");
    }
    return false;
  }
  if (lengths > 1) return refuse_body(response, 400, "a request may carry one Content-Length only");
  std::optional<std::uint64_t> length = content_length(request);
  if (!length) {
    return refuse_body(response, 400,
                       "the Content-Length is not a number of bytes: " +
                           request.get_header_value("Content-Length").substr(0, 40));
  }
  return false;
}

// Refuses a body over its route's limit (a GET's or another method's that takes none: 400);
// a model upload's is checked with its other headers (receive_model). Returns whether it
// answered. Runs once framing is known good (refuse_unframed_body).
bool refuse_body_over_limit(const httplib::Request& request, httplib::Response& response) {
  if (request.method == "PUT" && request.path.ends_with("/model")) return false;
  std::uint64_t length = content_length(request).value_or(0);
  std::uint64_t limit = max_request_body_bytes(request.method, request.path, 0);
  if (length <= limit) return false;
  if (limit == 0) {
    return refuse_body(response, 400, request.method + " " + request.path + " takes no body");
  }
  return refuse_body(response, 413,
                     "the body of " + request.method + " " + request.path + " is limited to " +
                         describe_bytes(limit) + " (model uploads to --max-upload-mb)");
}

void install_gate(httplib::Server& server, ServerContext& context) {
  server.set_pre_routing_handler([&context](const httplib::Request& request,
                                            httplib::Response& response) {
    request_started = std::chrono::steady_clock::now();
    prefer_gzip_over_brotli(request);
    if (refuse_unframed_body(request, response)) {
      return httplib::Server::HandlerResponse::Handled;
    }
    if (request.path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
      return refuse_body_over_limit(request, response)
                 ? httplib::Server::HandlerResponse::Handled
                 : httplib::Server::HandlerResponse::Unhandled;
    }
    if (changes_state(request.method) && comes_from_another_site(request)) {
      response.set_header("Connection", "close");
      send_error(response, 403, "a change requested by a page of another site is refused");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (request.path == "/api/v1/session" && request.method == "POST") {
      return refuse_body_over_limit(request, response)
                 ? httplib::Server::HandlerResponse::Handled
                 : httplib::Server::HandlerResponse::Unhandled;
    }
    bool by_header =
        authorization_matches(request.get_header_value("Authorization"), context.password);
    bool by_session = !by_header && context.sessions.is_valid(session_cookie(request));
    using Attempt = LoginThrottle::Attempt;
    Attempt attempt = by_header || by_session               ? Attempt::kRightPassword
                      : request.has_header("Authorization") ? Attempt::kWrongPassword
                                                            : Attempt::kNoPassword;
    if (TimeMs wait_ms = context.login_throttle.admit(request.remote_addr, attempt); wait_ms > 0) {
      send_too_many_wrong_passwords(response, request.remote_addr, wait_ms);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!by_header && !by_session) {
      answer_unauthenticated(request, response);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (by_session && changes_state(request.method) &&
        request.get_header_value("X-Gridexp-Request") != "1") {
      response.set_header("Connection", "close");
      send_error(response, 403,
                 "a change made with a session cookie needs the header X-Gridexp-Request: 1");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (refuse_body_over_limit(request, response)) {
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  // Before the answer is written: a client that sees its change acknowledged and polls at
  // once already gets a new ETag.
  server.set_post_routing_handler(
      [&context](const httplib::Request& request, httplib::Response& response) {
        if (changes_state(request.method) && response.status < 400) ++context.state_version;
      });

  server.set_logger([&context](const httplib::Request& request, const httplib::Response&) {
    if (request_started == std::chrono::steady_clock::time_point{}) return;
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - request_started;
    request_started = {};
    context.metrics.observe_request(request.method, route_label(request.path), took.count());
  });

  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& request, httplib::Response& response) {
        if (!response.body.empty() || response.status == 304) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string message;
        switch (response.status) {
          case 404:
            message = "no such route: " + request.method + " " + request.path;
            break;
          case 405:
            message = "method not allowed: " + request.method + " " + request.path;
            break;
          case 413:
            message = "the request body is larger than --max-upload-mb";
            break;
          case 416:
            message = "the requested range is not satisfiable";
            break;
          default:
            message = "HTTP status " + std::to_string(response.status);
        }
        send_error(response, response.status, message);
        return httplib::Server::HandlerResponse::Handled;
      }));

  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr failure) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(failure);
        } catch (const nlohmann::json::exception& error) {
          // A body's JSON of a shape no handler checked for (a string where a number goes):
          // the client's mistake, not the server's.
          return send_error(response, 400, std::string("malformed request: ") + error.what());
        } catch (const std::exception& error) {
          what = error.what();
        } catch (...) {
        }
        send_error(response, 500, "internal error: " + what);
      });
}

void install_read_api(httplib::Server& server, ServerContext& context) {
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    send_json(response, 200, {{"status", "ok"}});
  });

  server.Get(
      "/api/v1/experiments", [&context](const httplib::Request&, httplib::Response& response) {
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
      });

  auto with_trials = [&context](const httplib::Request& request, httplib::Response& response,
                                auto&& respond) {
    std::string name = request.matches[1];
    if (Status known = require_experiment(context, name); !known) {
      return send_status_error(response, known);
    }
    Result<std::vector<TrialRecord>> trials = context.store.list_trials(name);
    if (!trials) return send_status_error(response, trials.status());
    respond(*trials);
  };

  server.Get(R"(/api/v1/experiments/(.+)/trials)",
             [with_trials, &context](const httplib::Request& request, httplib::Response& response) {
               // Read before the trials: a change while they are read gives a newer ETag
               // next time, never an old ETag for newer trials.
               std::string etag = "\"" + context.state_epoch + "-" +
                                  std::to_string(context.state_version.load()) + "\"";
               response.set_header("ETag", etag);
               response.set_header("Cache-Control", "no-cache");
               if (request.get_header_value("If-None-Match") == etag) {
                 response.status = 304;
                 return;
               }
               with_trials(request, response, [&](const std::vector<TrialRecord>& trials) {
                 nlohmann::json body = nlohmann::json::array();
                 for (const TrialRecord& trial : trials) body.push_back(trial_to_json(trial));
                 send_json(response, 200, body);
               });
             });

  server.Get(R"(/api/v1/experiments/(.+)/trials\.csv)",
             [with_trials](const httplib::Request& request, httplib::Response& response) {
               with_trials(request, response, [&](const std::vector<TrialRecord>& trials) {
                 response.set_header(
                     "Content-Disposition",
                     attachment_disposition(std::string(request.matches[1]) + ".csv"));
                 response.set_content(trials_to_csv(trials), "text/csv; charset=utf-8");
               });
             });

  server.Get(route("/api/v1/trials/", kTrialId),
             [&context](const httplib::Request& request, httplib::Response& response) {
               Result<TrialRecord> trial = context.store.get_trial(request.matches[1]);
               if (!trial) return send_status_error(response, trial.status());
               send_json(response, 200, trial_to_json(*trial));
             });

  server.Get(route("/api/v1/trials/", kTrialId, "/metrics"),
             [&context](const httplib::Request& request, httplib::Response& response) {
               Result<std::vector<MetricPoint>> points =
                   context.store.list_metrics(request.matches[1]);
               if (!points) return send_status_error(response, points.status());
               nlohmann::json body = nlohmann::json::array();
               for (const MetricPoint& point : *points) {
                 body.push_back({{"step", optional_value(point.step)},
                                 {"time", iso8601_utc(point.time_ms)},
                                 {"values", point.values}});
               }
               send_json(response, 200, body);
             });

  server.Get(route("/api/v1/trials/", kTrialId, "/model"),
             [&context](const httplib::Request& request, httplib::Response& response) {
               std::string trial_id = request.matches[1];
               Result<TrialRecord> trial = context.store.get_trial(trial_id);
               if (!trial) return send_status_error(response, trial.status());
               if (!trial->model) {
                 return send_error(response, 404, "trial " + trial_id + " has no model file");
               }
               serve_file(request, response,
                          {context.model_files.path_for(trial_id), trial->model->sha256,
                           "application/octet-stream", trial_id + ".pt"});
             });

  server.Get("/api/v1/config", [&context](const httplib::Request&, httplib::Response& response) {
    send_json(
        response, 200,
        {{"experiment_name", context.experiment_name}, {"config", context.experiment_config}});
  });

  server.Get(route("/api/v1/trials/", kTrialId, "/log"),
             [&context](const httplib::Request& request, httplib::Response& response) {
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
             });

  server.Get("/api/v1/workers", [&context](const httplib::Request&, httplib::Response& response) {
    Result<std::vector<WorkerRecord>> workers = context.store.list_workers();
    if (!workers) return send_status_error(response, workers.status());
    nlohmann::json body = nlohmann::json::array();
    TimeMs now = context.clock.now_ms();
    for (const WorkerRecord& worker : *workers) {
      body.push_back(worker_to_json(worker, now, online_window_ms(context)));
    }
    send_json(response, 200, body);
  });

  auto serve_archive = [](Result<FileToServe> (ExperimentFiles::*which)(), ExperimentFiles& files) {
    return [which, &files](const httplib::Request& request, httplib::Response& response) {
      Result<FileToServe> file = (files.*which)();
      if (!file) return send_status_error(response, file.status());
      serve_file(request, response, *file);
    };
  };
  server.Get("/api/v1/files/scripts.zip",
             serve_archive(&ExperimentFiles::scripts_zip, context.experiment_files));
  server.Get("/api/v1/files/data.zip",
             serve_archive(&ExperimentFiles::data_zip, context.experiment_files));
}

// PUT /api/v1/trials/{id}/model: streamed to disk, hashed, committed under the lease.
void receive_model(ServerContext& context, const httplib::Request& request,
                   httplib::Response& response, const httplib::ContentReader& read_body) {
  std::string trial_id = request.matches[1];
  std::string lease_token = request.get_header_value("X-Gridexp-Lease-Token");
  std::string declared_sha = request.get_header_value("X-Gridexp-Sha256");
  if (lease_token.empty() || declared_sha.size() != 64) {
    return refuse_unread_body(
        response,
        Status::invalid_argument("a model upload needs the headers X-Gridexp-Lease-Token and "
                                 "X-Gridexp-Sha256 (64 hex digits)"));
  }
  if (content_length(request).value_or(0) > context.max_upload_bytes) {
    return refuse_unread_body(response,
                              Status::too_large("the model is larger than --max-upload-mb"));
  }
  if (Status lease = context.store.check_lease(trial_id, lease_token); !lease) {
    return refuse_unread_body(response, lease);
  }
  Result<std::unique_ptr<ModelUpload>> upload =
      context.model_files.begin_upload(trial_id, context.max_upload_bytes);
  if (!upload) return refuse_unread_body(response, upload.status());
  Status write_status;
  bool received = read_body([&](const char* data, std::size_t size) {
    write_status = (*upload)->append(data, size);
    return write_status.is_ok();
  });
  if (!write_status) return refuse_unread_body(response, write_status);
  if (!received) {
    // cpp-httplib 0.18 (Debian 13) enforces the payload limit on a chunked body itself: it
    // stops before handing over the excess and sets 413.
    if (response.status == 413) {
      return refuse_unread_body(response,
                                Status::too_large("the model is larger than --max-upload-mb"));
    }
    return refuse_unread_body(response, Status::invalid_argument("the model upload was cut short"));
  }
  if (Status finished = (*upload)->finish(declared_sha); !finished) {
    return send_status_error(response, finished);
  }
  std::lock_guard commit_lock(context.model_commit_mutex);
  Status status = context.store.check_lease(trial_id, lease_token);
  if (status) status = (*upload)->commit();
  if (status) {
    status = context.store.attach_model(
        trial_id, lease_token,
        {(*upload)->sha256(), static_cast<std::int64_t>((*upload)->size_bytes())});
    if (!status)
      ignore_outcome(default_file_system().remove(context.model_files.path_for(trial_id)));
  }
  if (!status) return send_lease_error(response, status);
  context.metrics.model_bytes_uploaded += (*upload)->size_bytes();
  send_json(response, 200, {{"sha256", (*upload)->sha256()}, {"size", (*upload)->size_bytes()}});
}

void install_worker_protocol(httplib::Server& server, ServerContext& context) {
  server.Post("/api/v1/workers",
              [&context](const httplib::Request& request, httplib::Response& response) {
                Result<nlohmann::json> body = parse_json_object_body(request);
                if (!body) return send_status_error(response, body.status());
                WorkerInfo info;
                info.host = optional_string_field(*body, "host");
                info.version = optional_string_field(*body, "version");
                if (auto pid = body->find("pid"); pid != body->end() && pid->is_number_integer()) {
                  info.pid = pid->get<std::int64_t>();
                }
                if (auto devices = body->find("devices"); devices != body->end())
                  info.devices = *devices;
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
              });

  server.Post(route("/api/v1/workers/", kWorkerId, "/claim"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                Result<std::string> claim_id = claim_id_of(request);
                if (!claim_id) return send_status_error(response, claim_id.status());
                Result<ClaimOutcome> outcome =
                    context.store.claim_next_trial(request.matches[1], *claim_id);
                if (!outcome) return send_status_error(response, outcome.status());
                send_json(response, 200, claim_answer(context, *outcome));
              });

  server.Post(route("/api/v1/trials/", kTrialId, "/heartbeat"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                nlohmann::json body;
                std::string lease_token;
                if (!parse_leased_call(request, response, &body, &lease_token)) return;
                Result<HeartbeatReply> reply =
                    context.store.heartbeat(request.matches[1], lease_token);
                if (!reply) return send_lease_error(response, reply.status());
                send_json(response, 200,
                          {{"lease_expires_at", iso8601_utc(reply->lease_expires_ms)},
                           {"stop", reply->stop_requested}});
              });

  server.Post(
      route("/api/v1/trials/", kTrialId, "/metrics"),
      [&context](const httplib::Request& request, httplib::Response& response) {
        nlohmann::json body;
        std::string lease_token;
        if (!parse_leased_call(request, response, &body, &lease_token)) return;
        auto points_field = body.find("points");
        if (points_field == body.end() || !points_field->is_array()) {
          return send_error(response, 400, "the body needs an array \"points\"");
        }
        std::vector<MetricPoint> points;
        for (const nlohmann::json& item : *points_field) {
          if (!item.is_object() || !item.contains("values") || !item["values"].is_object()) {
            return send_error(response, 400,
                              "each point needs an object \"values\" of metric names", item);
          }
          MetricPoint point;
          point.values = item["values"];
          if (item.contains("step") && item["step"].is_number_integer()) {
            point.step = item["step"].get<std::int64_t>();
          }
          point.time_ms = time_ms_field(item).value_or(context.clock.now_ms());
          points.push_back(std::move(point));
        }
        Status status = context.store.add_metrics(request.matches[1], lease_token, points);
        if (!status) return send_lease_error(response, status);
        send_ok(response);
      });

  server.Post(route("/api/v1/trials/", kTrialId, "/complete"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                nlohmann::json body;
                std::string lease_token;
                if (!parse_leased_call(request, response, &body, &lease_token)) return;
                if (!body.contains("results")) {
                  return send_error(response, 400, "the body needs \"results\"");
                }
                Result<std::string> next_claim_id = claim_id_field(body, "next_claim_id");
                if (!next_claim_id) return send_status_error(response, next_claim_id.status());
                if (next_claim_id->empty()) {
                  Status status =
                      context.store.complete(request.matches[1], lease_token, body["results"]);
                  if (!status) return send_lease_error(response, status);
                  ++context.metrics.completions;
                  return send_ok(response);
                }
                Result<ClaimOutcome> next = context.store.complete_and_claim(
                    request.matches[1], lease_token, body["results"], *next_claim_id);
                if (!next) return send_lease_error(response, next.status());
                ++context.metrics.completions;
                send_json(response, 200, {{"ok", true}, {"next", claim_answer(context, *next)}});
              });

  server.Post(route("/api/v1/trials/", kTrialId, "/fail"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                nlohmann::json body;
                std::string lease_token;
                if (!parse_leased_call(request, response, &body, &lease_token)) return;
                Result<std::string> error = string_field(body, "error");
                if (!error) return send_status_error(response, error.status());
                Status status = context.store.fail(request.matches[1], lease_token, *error,
                                                   optional_string_field(body, "traceback"));
                if (!status) return send_lease_error(response, status);
                ++context.metrics.failures;
                // A trial cancelled while it ran ends cancelled, not failed: say which, so a
                // worker does not stop on --raise_on_failure for a cancel it had not seen yet.
                Result<TrialRecord> ended = context.store.get_trial(request.matches[1]);
                send_json(
                    response, 200,
                    {{"ok", true},
                     {"state", ended ? to_string(ended->state) : to_string(TrialState::kFailed)}});
              });

  server.Post(route("/api/v1/trials/", kTrialId, "/release"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                nlohmann::json body;
                std::string lease_token;
                if (!parse_leased_call(request, response, &body, &lease_token)) return;
                Status status = context.store.release(request.matches[1], lease_token);
                if (!status) return send_lease_error(response, status);
                send_ok(response);
              });

  server.Post(route("/api/v1/trials/", kTrialId, "/log"),
              [&context](const httplib::Request& request, httplib::Response& response) {
                std::string trial_id = request.matches[1];
                std::string lease_token = request.get_header_value("X-Gridexp-Lease-Token");
                if (lease_token.empty()) {
                  return send_error(response, 400,
                                    "a log chunk needs the header X-Gridexp-Lease-Token");
                }
                if (Status lease = context.store.check_lease(trial_id, lease_token); !lease) {
                  return send_lease_error(response, lease);
                }
                if (Status status = context.trial_logs.append(trial_id, request.body); !status) {
                  return send_status_error(response, status);
                }
                send_ok(response);
              });

  server.Put(route("/api/v1/trials/", kTrialId, "/model"),
             [&context](const httplib::Request& request, httplib::Response& response,
                        const httplib::ContentReader& read_body) {
               receive_model(context, request, response, read_body);
             });
}

}  // namespace

void install_routes(httplib::Server& server, ServerContext& context) {
  install_gate(server, context);
  install_read_api(server, context);
  install_worker_protocol(server, context);
  install_action_routes(server, context);
  install_dashboard_routes(server, context);
}

}  // namespace gridexp
