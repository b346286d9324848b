// ServerConnection: one worker thread's HTTP conversation with gridexp-server.
//
// Every call carries the password, sends and receives JSON, and turns the answer into a
// Result: 2xx -> the body; 401 -> kUnauthorized; 404 -> kNotFound; 409 -> kConflict;
// 413 -> kTooLarge; other 4xx -> kInvalidArgument; 5xx and connection failures ->
// kUnavailable (worth retrying). call_with_retry() retries kUnavailable with capped
// exponential backoff until it succeeds, fails otherwise, or `keep_trying` says stop.
// Not thread-safe: give each thread its own connection (httplib serializes requests on one
// client, which would hold heartbeats behind a long upload).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace httplib {
class Client;
}

namespace gridexp {

// The server's limit on every request body but a model upload (JSON, log chunks): part of the
// protocol (docs/protocol.md, "Limits").
inline constexpr std::size_t kMaxJsonBodyBytes = 64u << 20;

struct RetryPolicy {
  std::chrono::milliseconds first_delay{500};
  std::chrono::milliseconds max_delay{10'000};
  // Sleeps, returning false when the caller should give up (shutdown). Replaceable in tests.
  std::function<bool(std::chrono::milliseconds)> sleep;
  // Told once per outage, e.g. to print "server unreachable; retrying".
  std::function<void(const Status&, std::chrono::milliseconds)> on_retry;
};

class ServerConnection {
 public:
  ServerConnection(const std::string& base_url, std::string password);
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  Result<nlohmann::json> get_json(const std::string& path);
  Result<nlohmann::json> post_json(const std::string& path, const nlohmann::json& body);
  // The same with the body already serialized (to know its size first).
  Result<nlohmann::json> post_json_text(const std::string& path, const std::string& text);
  // Streams a file as the request body (PUT) with extra headers; answers JSON.
  Result<nlohmann::json> put_file(const std::string& path, const std::filesystem::path& file,
                                  const std::vector<std::pair<std::string, std::string>>& headers);
  Result<nlohmann::json> post_text(const std::string& path, const std::string& text,
                                   const std::vector<std::pair<std::string, std::string>>& headers);
  // GETs `path` with extra headers and streams a 2xx body into `destination` (created or
  // truncated; flat memory); answers the response's headers. A non-2xx answer maps as above
  // and leaves `destination` untouched; a failed write is kIoError.
  Result<std::vector<std::pair<std::string, std::string>>> get_file(
      const std::string& path, const std::vector<std::pair<std::string, std::string>>& headers,
      const std::filesystem::path& destination);

  // How long to wait for an answer (default 120 s, for large uploads and slow servers).
  void set_read_timeout(std::chrono::seconds timeout);

  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  std::string password_;
  std::unique_ptr<httplib::Client> client_;
};

// Runs `call` until it returns anything but kUnavailable, sleeping per `policy` between tries.
// Returns the last kUnavailable when the policy's sleep says to give up.
Result<nlohmann::json> call_with_retry(const std::function<Result<nlohmann::json>()>& call,
                                       const RetryPolicy& policy);

}  // namespace gridexp
