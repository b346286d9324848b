// Helpers the route files share (request_gate.cpp, read_api.cpp, worker_protocol.cpp,
// model_upload.cpp, action_routes.cpp): route patterns, the JSON of optional values, required
// and optional body fields, the answers a lease check ends in, and the request's
// Content-Length. Internal to the routes; routes.h is the public side.
//
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/status.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace gridexp {

// Route patterns: a trial id, a worker id (both captured as matches[1]).
inline constexpr char kTrialIdPattern[] = "([0-9a-f]{16})";
inline constexpr char kWorkerIdPattern[] = "([A-Za-z0-9_-]{1,64})";

// `prefix` + `id_pattern` + `suffix`: "/api/v1/trials/" + kTrialIdPattern + "/heartbeat".
std::string route(const std::string& prefix, const char* id_pattern,
                  const std::string& suffix = "");

// A handler of `context`'s routes, as httplib takes it.
using ContextHandler = void (*)(ServerContext& context, const httplib::Request& request,
                                httplib::Response& response);
httplib::Server::Handler with_context(ServerContext& context, ContextHandler handler);

// An ISO 8601 time, or null.
nlohmann::json optional_time(const std::optional<TimeMs>& time);

template <typename T>
nlohmann::json optional_value(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// Answers 200 with a JSON array of `to_json(item)` for each of `items`, or the error `items`
// holds.
template <typename T, typename ToJson>
void send_json_array(httplib::Response& response, const Result<std::vector<T>>& items,
                     ToJson&& to_json) {
  if (!items) return send_status_error(response, items.status());
  nlohmann::json body = nlohmann::json::array();
  for (const T& item : *items) body.push_back(to_json(item));
  send_json(response, 200, body);
}

// A required non-empty string field of a request body; a 400-worthy Status without it.
Result<std::string> string_field(const nlohmann::json& body, const char* name);
// An optional string field of a request body; "" when missing or not a string.
std::string optional_string_field(const nlohmann::json& body, const char* name);

// Answers a failed lease check: a kConflict (the lease is lost) carries {"stop": true}.
void send_lease_error(httplib::Response& response, const Status& status);
// Answers 200 {"ok": true}.
void send_ok(httplib::Response& response);
// A send_lease_error that also closes the connection, after a refusal that left a request body
// unread: the unread bytes are never parsed as the next request.
void refuse_unread_body(httplib::Response& response, const Status& status);

// The request's Content-Length: empty when it has none or it is not a decimal number of bytes
// that fits 64 bits (the gate refuses such a request before any handler runs).
std::optional<std::uint64_t> content_length(const httplib::Request& request);

// The methods whose bodies cpp-httplib reads (it leaves a GET's unread, to pass for the next
// request).
bool method_takes_body(const std::string& method);

// Streams a request body into `upload` (`what` names it in errors: "model", "checkpoint").
Status receive_upload_body(ModelUpload& upload, httplib::Response& response,
                           const httplib::ContentReader& read_body, std::string_view what);

// PUT /api/v1/trials/{id}/model (model_upload.cpp): streamed to disk, hashed, committed under
// the lease.
void receive_model(ServerContext& context, const httplib::Request& request,
                   httplib::Response& response, const httplib::ContentReader& read_body);

// PUT and GET /api/v1/trials/{id}/checkpoint (checkpoint_routes.cpp): a trial's checkpoint
// streamed in (hashed, renamed into place, recorded under the lease, the previous one deleted)
// and out to the lease holder.
void receive_checkpoint(ServerContext& context, const httplib::Request& request,
                        httplib::Response& response, const httplib::ContentReader& read_body);
void send_checkpoint(ServerContext& context, const httplib::Request& request,
                     httplib::Response& response);
// After a trial's completion: its checkpoint file goes once the store no longer references it
// (the trial ended done; a trial cancelled meanwhile keeps it).
void forget_done_checkpoint(ServerContext& context, const std::string& trial_id);

}  // namespace gridexp
