#include "lean_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace gridexp::bench {
namespace {

constexpr std::size_t kReadBytes = 16 << 10;
constexpr int kTimeoutSeconds = 60;

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
    if (x != y) return false;
  }
  return true;
}

std::string system_error(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

struct AnswerHead {
  int status = 0;
  std::size_t content_length = 0;
  bool keep_alive = true;
};

// Reads an answer's head (its status line and headers, without the blank line); false, with
// `error`, when this client cannot take the answer.
bool parse_head(std::string_view head, AnswerHead& parsed, std::string& error) {
  // "HTTP/1.1 200 OK"
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/") {
    error = "not an HTTP answer";
    return false;
  }
  std::from_chars(head.data() + 9, head.data() + 12, parsed.status);
  bool has_length = false;
  std::size_t line_end = head.find("\r\n");  // the end of the status line
  while (line_end != std::string_view::npos) {
    std::size_t next = head.find("\r\n", line_end + 2);
    std::string_view line =
        head.substr(line_end + 2,
                    next == std::string_view::npos ? std::string_view::npos : next - line_end - 2);
    line_end = next;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (equals_ignoring_case(name, "content-length")) {
      has_length =
          std::from_chars(value.data(), value.data() + value.size(), parsed.content_length).ec ==
          std::errc();
    } else if (equals_ignoring_case(name, "connection")) {
      parsed.keep_alive = !equals_ignoring_case(value, "close");
    } else if (equals_ignoring_case(name, "transfer-encoding")) {
      error = "a chunked answer (this client needs Content-Length)";
      return false;
    }
  }
  if (!has_length) error = "an answer without Content-Length";
  return has_length;
}

}  // namespace

LeanHttpClient::LeanHttpClient(std::string host, int port, std::string_view bearer_token)
    : host_(std::move(host)), port_(port) {
  fixed_headers_ = "Host: " + host_ + ":" + std::to_string(port_) + "\r\n";
  fixed_headers_ += "Authorization: Bearer " + std::string(bearer_token) + "\r\n";
  // The headers gridexp-worker's cpp-httplib client sends, so that the server parses as many.
  fixed_headers_ += "Accept: */*\r\nAccept-Encoding: identity\r\n";
  fixed_headers_ += "User-Agent: gridexp-loadgen\r\nContent-Type: application/json\r\n";
  buffer_.reserve(kReadBytes);
}

LeanHttpClient::~LeanHttpClient() { close_socket(); }

bool LeanHttpClient::connect_socket(std::string& error) {
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port_));
  if (::inet_pton(AF_INET, host_.c_str(), &address.sin_addr) != 1) {
    error = "not an IPv4 address: " + host_;
    return false;
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error = system_error("socket");
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval timeout = {kTimeoutSeconds, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    error = system_error("connect");
    close_socket();
    return false;
  }
  buffer_.clear();
  return true;
}

void LeanHttpClient::close_socket() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool LeanHttpClient::send_all(std::string_view data, std::string& error) {
  while (!data.empty()) {
    ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      error = system_error("send");
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

bool LeanHttpClient::read_answer(HttpAnswer& answer) {
  std::optional<AnswerHead> head;
  std::size_t body_start = 0;
  while (true) {
    if (!head) {
      std::size_t head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        AnswerHead parsed;
        if (!parse_head(std::string_view(buffer_).substr(0, head_end), parsed, answer.error)) {
          return false;
        }
        head = parsed;
        body_start = head_end + 4;
      }
    }
    if (head && buffer_.size() >= body_start + head->content_length) {
      answer.status = head->status;
      answer.body.assign(buffer_, body_start, head->content_length);
      buffer_.erase(0, body_start + head->content_length);
      if (!head->keep_alive) close_socket();
      return true;
    }
    std::size_t had = buffer_.size();
    buffer_.resize(had + kReadBytes);
    ssize_t got = ::recv(fd_, buffer_.data() + had, kReadBytes, 0);
    buffer_.resize(had + static_cast<std::size_t>(got > 0 ? got : 0));
    if (got > 0) continue;
    if (got < 0 && errno == EINTR) continue;
    answer.closed_before_answer = had == 0;
    answer.error = got == 0 ? "the server closed the connection" : system_error("recv");
    return false;
  }
}

HttpAnswer LeanHttpClient::post(std::string_view path, std::string_view body) {
  HttpAnswer answer;
  if (fd_ < 0 && !connect_socket(answer.error)) return answer;
  request_.clear();
  request_.append("POST ").append(path).append(" HTTP/1.1\r\n").append(fixed_headers_);
  request_.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
  // The head and the body in two send() calls, as cpp-httplib's client (gridexp-worker's)
  // writes them. (One send() of both was 15% slower at one worker on loopback, and cost the
  // load generator more CPU per call: 21 against 15 us.)
  if (!send_all(request_, answer.error) || !send_all(body, answer.error)) {
    answer.closed_before_answer = true;
    close_socket();
    return answer;
  }
  if (!read_answer(answer)) close_socket();
  return answer;
}

}  // namespace gridexp::bench
