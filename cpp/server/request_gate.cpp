// The gate every request passes before its handler (routes.h): the framing and size of its
// body, the cross-site check, the password (header or session cookie) with the login throttle;
// and what wraps every handler: the state version bumped by a change, the request-latency
// metric, the JSON answer of an error status or an exception.
#include <chrono>
#include <exception>

#include "common/auth.h"
#include "server/dashboard_files.h"
#include "server/http_util.h"
#include "server/route_helpers.h"

namespace gridexp {
namespace {

using HandlerResponse = httplib::Server::HandlerResponse;

// Request bodies by route (docs/api.md, "Request bodies"); model and checkpoint files have
// their own limit, --max-upload-mb. The login is the one body read before the password is known.
constexpr std::uint64_t kMaxLoginBodyBytes = 4 << 10;
// Claims, heartbeats, releases, the actions on one trial, anything else: a small JSON object.
constexpr std::uint64_t kMaxSmallBodyBytes = 64 << 10;
// A worker's registration: its host and devices.
constexpr std::uint64_t kMaxWorkerBodyBytes = 1 << 20;
// An action on chosen trials of an experiment: their ids.
constexpr std::uint64_t kMaxSelectionBodyBytes = 16 << 20;
// What a trial reports: its results, failure (with traceback), metrics and log chunks.
constexpr std::uint64_t kMaxReportBodyBytes = 64 << 20;

// When this thread began answering its current request (0: no request).
thread_local std::chrono::steady_clock::time_point request_started{};

std::string describe_bytes(std::uint64_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1 << 10) && bytes % (1 << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

bool changes_state(const std::string& method) { return method != "GET" && method != "HEAD"; }

// A model or checkpoint upload: streamed, chunked allowed, limited by --max-upload-mb (its
// handler checks the length with its other headers).
bool is_file_upload(const std::string& method, const std::string& path) {
  return method == "PUT" && (path.ends_with("/model") || path.ends_with("/checkpoint"));
}

bool is_file_upload(const httplib::Request& request) {
  return is_file_upload(request.method, request.path);
}

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

// Answers `status` with `message`, closing the connection: an unread body must never pass
// for a request. Returns true, for the refuse_* functions below.
bool refuse(httplib::Response& response, int status, const std::string& message) {
  response.set_header("Connection", "close");
  send_error(response, status, message);
  return true;
}

// Refuses a request whose body cannot be read safely, before the password is looked at:
// cpp-httplib would read a body without a length (or chunked) until the client stops, past
// every limit. Only a model or checkpoint upload may stream chunked (ModelUpload enforces its
// limit). A
// request without a length and without Transfer-Encoding has no body (RFC 9112, 6.3): a POST,
// PUT or PATCH gets 411, a DELETE is read as an empty body. Returns whether it answered.
bool refuse_unframed_body(const httplib::Request& request, httplib::Response& response) {
  if (request.has_header("Transfer-Encoding")) {
    return !is_file_upload(request) &&
           refuse(response, 411, "send the body with a Content-Length (not chunked)");
  }
  std::size_t lengths = request.get_header_value_count("Content-Length");
  if (lengths == 0) {
    if (request.method == "POST" || request.method == "PUT" || request.method == "PATCH") {
      return refuse(response, 411,
                    "a " + request.method + " needs a Content-Length (0 for no body)");
    }
    // httplib owns the request object (it is not const); it reads no body of length 0.
    if (method_takes_body(request.method)) {
      const_cast<httplib::Request&>(request).set_header("Content-Length", "0");
    }
    return false;
  }
  if (lengths > 1) return refuse(response, 400, "a request may carry one Content-Length only");
  if (!content_length(request)) {
    return refuse(response, 400,
                  "the Content-Length is not a number of bytes: " +
                      request.get_header_value("Content-Length").substr(0, 40));
  }
  return false;
}

// Refuses a body over its route's limit (a GET's or another method's that takes none: 400);
// a file upload's is checked with its other headers (receive_model, receive_checkpoint).
// Returns whether it
// answered. Runs once framing is known good (refuse_unframed_body).
bool refuse_body_over_limit(const httplib::Request& request, httplib::Response& response) {
  if (is_file_upload(request)) return false;
  std::uint64_t length = content_length(request).value_or(0);
  std::uint64_t limit = max_request_body_bytes(request.method, request.path, 0);
  if (length <= limit) return false;
  if (limit == 0) {
    return refuse(response, 400, request.method + " " + request.path + " takes no body");
  }
  return refuse(response, 413,
                "the body of " + request.method + " " + request.path + " is limited to " +
                    describe_bytes(limit) + " (model uploads to --max-upload-mb)");
}

// Refuses a request without the password (nor a valid session), one from a client the login
// throttle holds back, and a change made with a session cookie but without the header a page of
// another site cannot send. Returns whether it answered.
bool refuse_unauthorized(ServerContext& context, const httplib::Request& request,
                         httplib::Response& response) {
  bool by_header =
      authorization_matches(request.get_header_value("Authorization"), context.password);
  bool by_session = !by_header && context.sessions.is_valid(session_cookie(request));
  using Attempt = LoginThrottle::Attempt;
  Attempt attempt = by_header || by_session               ? Attempt::kRightPassword
                    : request.has_header("Authorization") ? Attempt::kWrongPassword
                                                          : Attempt::kNoPassword;
  if (TimeMs wait_ms = context.login_throttle.admit(request.remote_addr, attempt); wait_ms > 0) {
    send_too_many_wrong_passwords(response, request.remote_addr, wait_ms);
    return true;
  }
  if (!by_header && !by_session) {
    answer_unauthenticated(request, response);
    return true;
  }
  if (by_session && changes_state(request.method) &&
      request.get_header_value("X-Gridexp-Request") != "1") {
    return refuse(response, 403,
                  "a change made with a session cookie needs the header X-Gridexp-Request: 1");
  }
  return false;
}

// Runs the gate's checks in order; returns whether one answered.
bool gate(ServerContext& context, const httplib::Request& request, httplib::Response& response) {
  if (refuse_unframed_body(request, response)) return true;
  if (request.path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
    return refuse_body_over_limit(request, response);
  }
  if (changes_state(request.method) && comes_from_another_site(request)) {
    return refuse(response, 403, "a change requested by a page of another site is refused");
  }
  if (request.path == "/api/v1/session" && request.method == "POST") {
    return refuse_body_over_limit(request, response);
  }
  return refuse_unauthorized(context, request, response) ||
         refuse_body_over_limit(request, response);
}

std::string error_message(const httplib::Request& request, int status) {
  switch (status) {
    case 404:
      return "no such route: " + request.method + " " + request.path;
    case 405:
      return "method not allowed: " + request.method + " " + request.path;
    case 413:
      return "the request body is larger than --max-upload-mb";
    case 416:
      return "the requested range is not satisfiable";
    default:
      return "HTTP status " + std::to_string(status);
  }
}

// An error status a handler (or httplib) set without a body gets the JSON error shape.
HandlerResponse answer_error_status(const httplib::Request& request, httplib::Response& response) {
  if (!response.body.empty() || response.status == 304) return HandlerResponse::Unhandled;
  send_error(response, response.status, error_message(request, response.status));
  return HandlerResponse::Handled;
}

void answer_exception(httplib::Response& response, const std::exception_ptr& failure) {
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
}

void observe_request_duration(ServerContext& context, const httplib::Request& request) {
  if (request_started == std::chrono::steady_clock::time_point{}) return;
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - request_started;
  request_started = {};
  context.metrics.observe_request(request.method, route_label(request.path), took.count());
}

}  // namespace

std::uint64_t max_request_body_bytes(const std::string& method, const std::string& path,
                                     std::uint64_t max_upload_bytes) {
  if (is_file_upload(method, path)) return max_upload_bytes;
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

void install_request_gate(httplib::Server& server, ServerContext& context) {
  server.set_pre_routing_handler([&context](const httplib::Request& request,
                                            httplib::Response& response) {
    request_started = std::chrono::steady_clock::now();
    prefer_gzip_over_brotli(request);
    return gate(context, request, response) ? HandlerResponse::Handled : HandlerResponse::Unhandled;
  });

  // Before the answer is written: a client that sees its change acknowledged and polls at
  // once already gets a new ETag.
  server.set_post_routing_handler(
      [&context](const httplib::Request& request, httplib::Response& response) {
        if (changes_state(request.method) && response.status < 400) ++context.state_version;
      });

  server.set_logger([&context](const httplib::Request& request, const httplib::Response&) {
    observe_request_duration(context, request);
  });

  server.set_error_handler(httplib::Server::HandlerWithResponse(answer_error_status));

  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr failure) {
        answer_exception(response, failure);
      });
}

}  // namespace gridexp
