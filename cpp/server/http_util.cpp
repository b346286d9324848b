#include "server/http_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <memory>

#include "common/url.h"

namespace gridexp {

int http_status_for(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kUnauthorized:
      return 401;
    case Code::kNotFound:
      return 404;
    case Code::kConflict:
      return 409;
    case Code::kTooLarge:
      return 413;
    case Code::kUnavailable:
      return 503;
    case Code::kIoError:
    case Code::kInternal:
      return 500;
  }
  return 500;
}

void send_json(httplib::Response& response, int http_status, const nlohmann::json& body) {
  response.status = http_status;
  response.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       "application/json");
}

void send_error(httplib::Response& response, int http_status, const std::string& message,
                const nlohmann::json& detail) {
  nlohmann::json body = {{"error", message}};
  if (!detail.is_null()) body["detail"] = detail;
  send_json(response, http_status, body);
}

void send_status_error(httplib::Response& response, const Status& status) {
  send_error(response, http_status_for(status.code()), status.message());
}

void send_too_many_wrong_passwords(httplib::Response& response, const std::string& client,
                                   TimeMs wait_ms) {
  std::string seconds = std::to_string((wait_ms + 999) / 1000);
  response.set_header("Connection", "close");
  response.set_header("Retry-After", seconds);
  send_error(response, 429,
             "too many wrong passwords from " + client + "; try again in " + seconds + " s");
}

Result<nlohmann::json> parse_json_object_body(const httplib::Request& request) {
  Result<nlohmann::json> body = parse_json(request.body, kMaxMessageJsonDepth);
  if (!body) return Status::invalid_argument("the body is " + body.status().message());
  if (!body->is_object()) return Status::invalid_argument("the JSON body must be an object");
  return body;
}

std::string iso8601_utc(TimeMs time_ms) {
  // Floor division without overflow: a worker's metric may carry any TimeMs, INT64_MIN too.
  TimeMs whole_seconds = time_ms / 1000;
  TimeMs milliseconds = time_ms % 1000;
  if (milliseconds < 0) {
    milliseconds += 1000;
    --whole_seconds;
  }
  std::time_t seconds = static_cast<std::time_t>(whole_seconds);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  std::array<char, 40> text{};
  std::size_t length = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(text.data() + length, text.size() - length, ".%03dZ",
                static_cast<int>(milliseconds));
  return text.data();
}

namespace {

bool if_none_match_hits(const std::string& header, const std::string& etag) {
  if (header.empty()) return false;
  if (header.find('*') != std::string::npos) return true;
  // A list of entity tags, possibly weak (W/"..."); weak comparison is right for GET.
  std::size_t position = 0;
  while ((position = header.find('"', position)) != std::string::npos) {
    std::size_t end = header.find('"', position + 1);
    if (end == std::string::npos) break;
    if (header.compare(position, end - position + 1, etag) == 0) return true;
    position = end + 1;
  }
  return false;
}

// An open file and the buffer a streamed response reads it through, for as long as the
// response lasts. The buffer is left uninitialized: every byte sent was read into it first.
class FileDescriptor {
 public:
  FileDescriptor(int fd_in, std::size_t buffer_bytes_in)
      : fd(fd_in), buffer_bytes(buffer_bytes_in), buffer(new char[buffer_bytes_in]) {}
  ~FileDescriptor() { ::close(fd); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  const int fd;
  const std::size_t buffer_bytes;
  const std::unique_ptr<char[]> buffer;
};

// Large files are read in large pieces: a quarter of the syscalls of 64 KiB reads, and
// a larger readahead for a file that is not in the page cache.
constexpr std::size_t kMaxReadBytes = 256 << 10;

}  // namespace

std::string attachment_disposition(std::string_view file_name) {
  std::string plain(file_name);
  for (char& c : plain) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') c = '_';
  }
  return "attachment; filename=\"" + plain + "\"; filename*=UTF-8''" +
         encode_path_segment(file_name);
}

void serve_file(const httplib::Request& request, httplib::Response& response,
                const FileToServe& file) {
  std::string etag = "\"" + file.sha256 + "\"";
  response.set_header("ETag", etag);
  response.set_header("Accept-Ranges", "bytes");
  response.set_header("Cache-Control", "no-cache");
  if (if_none_match_hits(request.get_header_value("If-None-Match"), etag)) {
    response.status = 304;
    return;
  }
  int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    send_error(response, 404, "file not found: " + file.path.filename().string());
    return;
  }
  struct stat info = {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    send_error(response, 500, "cannot stat " + file.path.filename().string());
    return;
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  auto descriptor = std::make_shared<FileDescriptor>(
      fd, std::clamp<std::size_t>(static_cast<std::size_t>(info.st_size), 1, kMaxReadBytes));
  if (!file.download_name.empty()) {
    response.set_header("Content-Disposition", attachment_disposition(file.download_name));
  }
  // The status stays unset: httplib then answers 200, or 206 with Content-Range for a Range.
  response.set_content_provider(
      static_cast<std::size_t>(info.st_size), file.content_type,
      [descriptor](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        char* buffer = descriptor->buffer.get();
        std::size_t chunk = std::min(length, descriptor->buffer_bytes);
        ssize_t count = ::pread(descriptor->fd, buffer, chunk, static_cast<off_t>(offset));
        if (count <= 0) return false;
        return sink.write(buffer, static_cast<std::size_t>(count));
      });
}

}  // namespace gridexp
