// Helpers shared by every route: the one JSON error shape, request-body parsing, timestamps
// and streamed file responses with ETag, conditional GET and Range support.
//
// Every error a client sees is {"error": "<what is wrong>", "detail": <optional JSON>}.
// Stateless; safe from any thread.
#pragma once

#include <filesystem>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_parse.h"
#include "common/status.h"

namespace gridexp {

int http_status_for(Code code);

void send_json(httplib::Response& response, int http_status, const nlohmann::json& body);
void send_error(httplib::Response& response, int http_status, const std::string& message,
                const nlohmann::json& detail = nullptr);
void send_status_error(httplib::Response& response, const Status& status);
// 429 for a client the LoginThrottle refuses for `wait_ms` more, closing the connection.
void send_too_many_wrong_passwords(httplib::Response& response, const std::string& client,
                                   TimeMs wait_ms);

// The request body as a JSON object (parse_json, at most kMaxMessageJsonDepth deep); a
// 400-worthy Status when malformed, out of range, too deep or not an object.
Result<nlohmann::json> parse_json_object_body(const httplib::Request& request);

// "2026-11-28T01:23:45.678Z"
std::string iso8601_utc(TimeMs time_ms);

// A Content-Disposition value that offers `file_name` as the download's name, whatever bytes
// it holds: a plain ASCII `filename` (quotes, backslashes, controls and non-ASCII bytes as
// '_') and the exact name as RFC 6266's `filename*=UTF-8''<percent-encoded>`.
std::string attachment_disposition(std::string_view file_name);

struct FileToServe {
  std::filesystem::path path;
  std::string sha256;  // becomes the strong ETag
  std::string content_type = "application/octet-stream";
  std::string download_name;  // Content-Disposition filename; empty for none
};

// Streams the file in bounded chunks (flat memory whatever its size). Answers 304 when
// If-None-Match names its ETag; Range requests get 206 (httplib slices the stream).
void serve_file(const httplib::Request& request, httplib::Response& response,
                const FileToServe& file);

}  // namespace gridexp
