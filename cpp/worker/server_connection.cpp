#include "worker/server_connection.h"

#include <httplib.h>

#include <fstream>

#include "common/json_parse.h"

namespace gridexp {
namespace {

std::string error_message(const httplib::Response& response) {
  Result<nlohmann::json> parsed = parse_json(response.body, kMaxMessageJsonDepth);
  const nlohmann::json body = parsed ? std::move(parsed).value() : nlohmann::json();
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(response.status);
}

bool is_success(int status) { return status >= 200 && status < 300; }

Result<nlohmann::json> interpret_response(const httplib::Response& response,
                                          const std::string& what);

Result<nlohmann::json> interpret(const httplib::Result& result, const std::string& what) {
  if (!result) {
    return Status::unavailable(what + ": " + httplib::to_string(result.error()));
  }
  return interpret_response(*result, what);
}

Result<nlohmann::json> interpret_response(const httplib::Response& response,
                                          const std::string& what) {
  if (is_success(response.status)) {
    if (response.body.empty()) return nlohmann::json(nullptr);
    Result<nlohmann::json> body = parse_json(response.body, kMaxMessageJsonDepth);
    if (!body)
      return Status::unavailable(what +
                                 ": the answer is not usable JSON: " + body.status().message());
    return body;
  }
  std::string message = what + ": " + error_message(response);
  switch (response.status) {
    case 401:
      return Status::unauthorized(message);
    case 404:
      return Status::not_found(message);
    case 409:
      return Status::conflict(message);
    case 413:
      return Status::too_large(message);
    case 429:
      // Throttled (wrong passwords from this address, maybe not ours): retried like an outage.
      return Status::unavailable(message);
    default:
      if (response.status >= 500) return Status::unavailable(message);
      return Status::invalid_argument(message);
  }
}

}  // namespace

ServerConnection::ServerConnection(const std::string& base_url, std::string password)
    : base_url_(base_url),
      password_(std::move(password)),
      client_(std::make_unique<httplib::Client>(base_url)) {
  client_->set_bearer_token_auth(password_.c_str());
  client_->set_connection_timeout(10);
  client_->set_read_timeout(120);
  client_->set_write_timeout(120);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  // Callers percent-encode each path segment themselves (common/url.h); cpp-httplib's own
  // encoding would leave '#', '?' and '%' as they are and differs between versions.
  client_->set_url_encode(false);
  // Answers are small JSON, and compressing them costs the server CPU: cpp-httplib 0.18
  // (Debian 13) would otherwise ask for br/gzip on every call, where 0.11 asks for nothing.
  client_->set_default_headers({{"Accept-Encoding", "identity"}});
}

ServerConnection::~ServerConnection() = default;

void ServerConnection::set_read_timeout(std::chrono::seconds timeout) {
  client_->set_read_timeout(static_cast<time_t>(timeout.count()));
}

Result<nlohmann::json> ServerConnection::get_json(const std::string& path) {
  return interpret(client_->Get(path.c_str()), "GET " + path);
}

Result<nlohmann::json> ServerConnection::post_json(const std::string& path,
                                                   const nlohmann::json& body) {
  return post_json_text(path, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<nlohmann::json> ServerConnection::post_json_text(const std::string& path,
                                                        const std::string& text) {
  return interpret(client_->Post(path.c_str(), text, "application/json"), "POST " + path);
}

Result<nlohmann::json> ServerConnection::put_file(
    const std::string& path, const std::filesystem::path& file,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  auto stream = std::make_shared<std::ifstream>(file, std::ios::binary);
  std::error_code error;
  std::uintmax_t size = std::filesystem::file_size(file, error);
  if (!*stream || error) return Status::io_error("cannot read " + file.string());
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers) request_headers.emplace(name, value);
  auto provider = [stream](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
    std::vector<char> buffer(std::min<std::size_t>(length, 1 << 16));
    stream->seekg(static_cast<std::streamoff>(offset));
    stream->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize count = stream->gcount();
    if (count <= 0) return false;
    return sink.write(buffer.data(), static_cast<std::size_t>(count));
  };
  return interpret(client_->Put(path.c_str(), request_headers, static_cast<std::size_t>(size),
                                provider, "application/octet-stream"),
                   "PUT " + path);
}

Result<nlohmann::json> ServerConnection::post_text(
    const std::string& path, const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers) request_headers.emplace(name, value);
  return interpret(client_->Post(path.c_str(), request_headers, text, "text/plain; charset=utf-8"),
                   "POST " + path);
}

Result<std::vector<std::pair<std::string, std::string>>> ServerConnection::get_file(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& headers,
    const std::filesystem::path& destination) {
  constexpr std::size_t kErrorBodyLimit = 64 << 10;
  httplib::Headers request_headers;
  for (const auto& [name, value] : headers) request_headers.emplace(name, value);
  std::ofstream out;
  int status = 0;
  bool write_failed = false;
  std::string error_body;
  httplib::Result result = client_->Get(
      path.c_str(), request_headers,
      [&](const httplib::Response& response) {
        status = response.status;
        if (!is_success(status)) return true;
        out.open(destination, std::ios::binary | std::ios::trunc);
        write_failed = !out;
        return !write_failed;
      },
      [&](const char* data, std::size_t length) {
        if (!is_success(status)) {
          error_body.append(data, std::min(length, kErrorBodyLimit - error_body.size()));
          return error_body.size() < kErrorBodyLimit;
        }
        out.write(data, static_cast<std::streamsize>(length));
        write_failed = !out;
        return !write_failed;
      });
  if (out.is_open()) {
    out.close();
    write_failed = write_failed || !out;
  }
  if (write_failed) return Status::io_error("cannot write " + destination.string());
  std::string what = "GET " + path;
  if (!result) return Status::unavailable(what + ": " + httplib::to_string(result.error()));
  if (!is_success(result->status)) {
    httplib::Response answer = *result;
    answer.body = std::move(error_body);
    return interpret_response(answer, what).status();
  }
  std::vector<std::pair<std::string, std::string>> answer_headers(result->headers.begin(),
                                                                  result->headers.end());
  return answer_headers;
}

Result<nlohmann::json> call_with_retry(const std::function<Result<nlohmann::json>()>& call,
                                       const RetryPolicy& policy) {
  std::chrono::milliseconds delay = policy.first_delay;
  bool told = false;
  while (true) {
    Result<nlohmann::json> result = call();
    if (result || result.status().code() != Code::kUnavailable) return result;
    if (!told && policy.on_retry) policy.on_retry(result.status(), delay);
    told = true;
    if (!policy.sleep || !policy.sleep(delay)) return result;
    delay = std::min(delay * 2, policy.max_delay);
  }
}

}  // namespace gridexp
