#include "server/buffered_socket_stream.h"

#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>

namespace gridexp {
namespace {

// The numeric host and the port of a socket address, as cpp-httplib's own stream gives them.
void describe(const sockaddr_storage& address, socklen_t length, std::string& ip, int& port) {
  char host[NI_MAXHOST] = {};
  char service[NI_MAXSERV] = {};
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host, sizeof host, service,
                  sizeof service, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return;
  }
  ip = host;
  port = std::atoi(service);
}

// recv(), retried when a signal interrupts it.
ssize_t receive(int socket, char* into, std::size_t size, int flags) {
  ssize_t got;
  do {
    got = ::recv(socket, into, size, flags);
  } while (got < 0 && errno == EINTR);
  return got;
}

// After a receive that does not wait: whether the connection is still open (bytes came, or
// none were there yet).
bool still_open(ssize_t got) {
  return got > 0 || (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

bool wait_for(int socket, short events, std::chrono::milliseconds timeout) {
  pollfd waited{socket, events, 0};
  int ready;
  do {
    ready = ::poll(&waited, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

// Where a request head that starts `buffered` ends (just past its blank line), or npos.
std::size_t head_end(std::string_view buffered) {
  std::size_t crlf = buffered.find("\n\r\n");
  std::size_t lf = buffered.find("\n\n");
  if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
    return crlf + 3;
  }
  return lf == std::string_view::npos ? lf : lf + 2;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// What a request head says about its body, read as cpp-httplib reads it: a header's name is
// everything before its colon, its value is trimmed of spaces and tabs.
struct BodyFraming {
  int length_headers = 0;
  std::string_view length;
  bool transfer_encoding = false;
  bool expects_continue = false;
};

BodyFraming body_framing(std::string_view head) {
  BodyFraming framing;
  std::size_t at = head.find('\n');  // past the request line
  while (at != std::string_view::npos && at + 1 < head.size()) {
    std::size_t end = head.find('\n', at + 1);
    std::string_view line = head.substr(at + 1, end == std::string_view::npos ? end : end - at - 1);
    at = end;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() &&
           (value.back() == ' ' || value.back() == '\t' || value.back() == '\r')) {
      value.remove_suffix(1);
    }
    if (equals_ignoring_case(name, "Content-Length")) {
      ++framing.length_headers;
      framing.length = value;
    } else if (equals_ignoring_case(name, "Transfer-Encoding")) {
      framing.transfer_encoding = true;
    } else if (equals_ignoring_case(name, "Expect")) {
      framing.expects_continue = equals_ignoring_case(value, "100-continue");
    }
  }
  return framing;
}

// The body to receive before the request is served: a single Content-Length of at most
// `limit`, and no Transfer-Encoding; otherwise none (the serving thread deals with it).
std::optional<std::size_t> body_to_buffer(const BodyFraming& framing, std::size_t limit) {
  if (framing.transfer_encoding || framing.length_headers != 1) return std::nullopt;
  std::size_t length = 0;
  const char* end = framing.length.data() + framing.length.size();
  auto [stop, error] = std::from_chars(framing.length.data(), end, length);
  if (error != std::errc() || stop != end || length > limit) return std::nullopt;
  return length;
}

ssize_t send_some(int socket, const char* data, std::size_t size) {
  ssize_t sent;
  do {
    sent = ::send(socket, data, size, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  return sent;
}

}  // namespace

BufferedSocketStream::BufferedSocketStream(int socket, std::chrono::milliseconds read_timeout,
                                           std::chrono::milliseconds write_timeout)
    : socket_(socket), read_timeout_(read_timeout), write_timeout_(write_timeout) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (getpeername(socket_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    describe(address, length, remote_ip_, remote_port_);
  }
  length = sizeof address;
  if (getsockname(socket_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    describe(address, length, local_ip_, local_port_);
  }
  unsent_.reserve(kSendBuffer);
}

BufferedSocketStream::~BufferedSocketStream() {
  ::shutdown(socket_, SHUT_RDWR);
  ::close(socket_);
}

bool BufferedSocketStream::is_readable() const {
  if (has_buffered_input()) return true;
  if (!flush()) return false;
  return wait_for(socket_, POLLIN, read_timeout_);
}

bool BufferedSocketStream::is_writable() const {
  return !broken_ && wait_for(socket_, POLLOUT, write_timeout_);
}

bool BufferedSocketStream::fill() const {
  // Whatever the answer so far is must reach the client before it sends more.
  if (!flush()) return false;
  use_buffer(request_bytes_ >= kLargeBodyBytes ? kLargeReceiveBuffer : kSmallReceiveBuffer);
  ssize_t got = receive(socket_, received_.get(), received_capacity_, 0);
  if (got <= 0) return false;
  received_at_ = 0;
  received_end_ = static_cast<std::size_t>(got);
  return true;
}

void BufferedSocketStream::use_buffer(std::size_t capacity) const {
  if (received_capacity_ == capacity) return;
  received_.reset(new char[capacity]);
  received_capacity_ = capacity;
}

bool BufferedSocketStream::socket_has_input() const {
  int pending = 0;
  return ::ioctl(socket_, FIONREAD, &pending) == 0 && pending > 0;
}

void BufferedSocketStream::keep_unread(std::size_t capacity) {
  std::size_t unread = received_end_ - received_at_;
  if (received_ && received_capacity_ >= capacity) {
    std::memmove(received_.get(), received_.get() + received_at_, unread);
  } else {
    std::unique_ptr<char[]> larger(new char[capacity]);
    if (unread > 0) std::memcpy(larger.get(), received_.get() + received_at_, unread);
    received_ = std::move(larger);
    received_capacity_ = capacity;
  }
  received_at_ = 0;
  received_end_ = unread;
}

BufferedSocketStream::Awaited BufferedSocketStream::awaited() const {
  std::string_view buffered(received_.get() + received_at_, received_end_ - received_at_);
  std::size_t head = head_end(buffered);
  if (head == std::string_view::npos) {
    return {buffered.size() >= kMaxBufferedHead ? 0 : kMaxBufferedHead, false};
  }
  BodyFraming framing = body_framing(buffered.substr(0, head));
  std::optional<std::size_t> body = body_to_buffer(framing, kMaxBufferedBody);
  if (!body || buffered.size() >= head + *body) return {};
  return {head + *body, framing.expects_continue};
}

bool BufferedSocketStream::discard_arrived() {
  // One receive per call: a client that keeps sending does not keep the thread.
  keep_unread(kSmallReceiveBuffer);
  return still_open(receive(socket_, received_.get(), received_capacity_, MSG_DONTWAIT));
}

bool BufferedSocketStream::send_continue() {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  continue_sent_ = true;
  return write(kContinue.data(), kContinue.size()) >= 0 && flush();
}

bool BufferedSocketStream::receive_arrived() {
  if (discarding_) return discard_arrived();
  while (true) {
    Awaited request = awaited();
    if (request.bytes == 0) return true;
    keep_unread(std::max(request.bytes, kSmallReceiveBuffer));
    // The client sends its body only after a 100 Continue (or after a timeout of its own).
    if (request.continue_expected && !continue_sent_ && !send_continue()) return false;
    ssize_t got = receive(socket_, received_.get() + received_end_,
                          received_capacity_ - received_end_, MSG_DONTWAIT);
    if (got <= 0) return still_open(got);
    received_end_ += static_cast<std::size_t>(got);
  }
}

ssize_t BufferedSocketStream::read(char* data, std::size_t size) {
  if (size == 0) return 0;
  if (request_bytes_ == 0) {
    // Served because kMaxBufferedHead bytes came without the head's end: cpp-httplib would
    // wait on the socket for the end of its line, holding the thread. It gets what came.
    std::string_view buffered(received_.get() + received_at_, received_end_ - received_at_);
    head_cut_ = buffered.size() >= kMaxBufferedHead && head_end(buffered) == std::string_view::npos;
  }
  if (!has_buffered_input() && (head_cut_ || !fill())) return -1;
  std::size_t taken = std::min(size, received_end_ - received_at_);
  std::memcpy(data, received_.get() + received_at_, taken);
  received_at_ += taken;
  request_bytes_ += taken;
  return static_cast<ssize_t>(taken);
}

ssize_t BufferedSocketStream::write(const char* data, std::size_t size) {
  if (broken_) return -1;
  // cpp-httplib writes an answer's head in one piece; it closes the connection only when the
  // request asked, not when a handler's answer says so. Its headers come in any order (0.18
  // keeps them unordered): Connection may be the head's last line.
  std::string_view written(data, size);
  if (written.starts_with("HTTP/1.")) {
    std::size_t head_end = written.find("\r\n\r\n");
    std::string_view head =
        head_end == std::string_view::npos ? written : written.substr(0, head_end + 2);
    if (head.find("\r\nConnection: close\r\n") != std::string_view::npos) answer_closes_ = true;
  }
  if (unsent_.size() + size <= kSendBuffer) {
    unsent_.append(data, size);
    return static_cast<ssize_t>(size);
  }
  if (!flush()) return -1;
  if (size < kSendBuffer) {
    unsent_.append(data, size);
    return static_cast<ssize_t>(size);
  }
  ssize_t sent = send_some(socket_, data, size);
  if (sent < 0) broken_ = true;
  return sent;
}

bool BufferedSocketStream::flush() const {
  if (broken_) return false;
  std::size_t at = 0;
  while (at < unsent_.size()) {
    ssize_t sent = send_some(socket_, unsent_.data() + at, unsent_.size() - at);
    if (sent <= 0) {
      broken_ = true;
      unsent_.clear();
      return false;
    }
    at += static_cast<std::size_t>(sent);
  }
  unsent_.clear();
  return true;
}

bool BufferedSocketStream::end_request() {
  request_bytes_ = 0;
  continue_sent_ = false;
  head_cut_ = false;
  if (answer_closes_) {
    discarding_ = true;  // for good: what the client sends now is the refused body, or worse
    received_at_ = received_end_;
  }
  if (received_capacity_ > kSmallReceiveBuffer && !has_buffered_input()) {
    received_.reset();
    received_capacity_ = 0;
  }
  return flush();
}

void BufferedSocketStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = remote_ip_;
  port = remote_port_;
}

void BufferedSocketStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = local_ip_;
  port = local_port_;
}

}  // namespace gridexp
