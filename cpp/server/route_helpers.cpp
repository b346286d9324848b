#include "server/route_helpers.h"

#include <charconv>

#include "server/http_util.h"

namespace gridexp {

std::string route(const std::string& prefix, const char* id_pattern, const std::string& suffix) {
  return prefix + id_pattern + suffix;
}

httplib::Server::Handler with_context(ServerContext& context, ContextHandler handler) {
  return [&context, handler](const httplib::Request& request, httplib::Response& response) {
    handler(context, request, response);
  };
}

nlohmann::json optional_time(const std::optional<TimeMs>& time) {
  return time ? nlohmann::json(iso8601_utc(*time)) : nlohmann::json(nullptr);
}

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

void send_lease_error(httplib::Response& response, const Status& status) {
  nlohmann::json detail = nullptr;
  if (status.code() == Code::kConflict) detail = {{"stop", true}};
  send_error(response, http_status_for(status.code()), status.message(), detail);
}

void send_ok(httplib::Response& response) { send_json(response, 200, {{"ok", true}}); }

void refuse_unread_body(httplib::Response& response, const Status& status) {
  response.set_header("Connection", "close");
  send_lease_error(response, status);
}

Status receive_upload_body(ModelUpload& upload, httplib::Response& response,
                           const httplib::ContentReader& read_body, std::string_view what) {
  Status write_status;
  bool received = read_body([&](const char* data, std::size_t size) {
    write_status = upload.append(data, size);
    return write_status.is_ok();
  });
  if (!write_status) return write_status;
  if (received) return Status::ok();
  // cpp-httplib 0.18 (Debian 13) enforces the payload limit on a chunked body itself: it
  // stops before handing over the excess and sets 413.
  if (response.status == 413) {
    return Status::too_large("the " + std::string(what) + " is larger than --max-upload-mb");
  }
  return Status::invalid_argument("the " + std::string(what) + " upload was cut short");
}

std::optional<std::uint64_t> content_length(const httplib::Request& request) {
  if (!request.has_header("Content-Length")) return std::nullopt;
  std::string text = request.get_header_value("Content-Length");
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool method_takes_body(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
}

}  // namespace gridexp
