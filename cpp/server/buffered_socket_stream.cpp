#include "server/buffered_socket_stream.h"

#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

bool wait_for(int socket, short events, std::chrono::milliseconds timeout) {
  pollfd waited{socket, events, 0};
  int ready;
  do {
    ready = ::poll(&waited, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
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
  ssize_t got;
  do {
    got = ::recv(socket_, received_.get(), received_capacity_, 0);
  } while (got < 0 && errno == EINTR);
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

bool BufferedSocketStream::receive_arrived() {
  if (!received_) use_buffer(kSmallReceiveBuffer);
  if (received_at_ > 0) {  // keep the unread bytes at the front
    std::memmove(received_.get(), received_.get() + received_at_, received_end_ - received_at_);
    received_end_ -= received_at_;
    received_at_ = 0;
  }
  if (received_end_ == received_capacity_) return true;
  ssize_t got;
  do {
    got = ::recv(socket_, received_.get() + received_end_, received_capacity_ - received_end_,
                 MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got == 0) return false;
  if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  received_end_ += static_cast<std::size_t>(got);
  return true;
}

bool BufferedSocketStream::head_complete() const {
  if (received_ && received_end_ - received_at_ == received_capacity_) return true;
  std::string_view buffered(received_.get() + received_at_, received_end_ - received_at_);
  return buffered.find("\n\r\n") != std::string_view::npos ||
         buffered.find("\n\n") != std::string_view::npos;
}

ssize_t BufferedSocketStream::read(char* data, std::size_t size) {
  if (size == 0) return 0;
  if (!has_buffered_input() && !fill()) return -1;
  std::size_t taken = std::min(size, received_end_ - received_at_);
  std::memcpy(data, received_.get() + received_at_, taken);
  received_at_ += taken;
  request_bytes_ += taken;
  return static_cast<ssize_t>(taken);
}

ssize_t BufferedSocketStream::write(const char* data, std::size_t size) {
  if (broken_) return -1;
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
