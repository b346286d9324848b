// BufferedSocketStream: cpp-httplib's Stream over an accepted connection, with a receive
// buffer and a send buffer of its own.
//
// cpp-httplib reads a request's head one byte per read() and its body in pieces of its
// compiled-in CPPHTTPLIB_RECV_BUFSIZ (4 KiB in Debian 12's library); its own stream turns
// every body piece into a recv(). This one receives up to 16 KiB at a time, and up to 256 KiB
// once a request's body has passed 64 KiB (a model upload), so a piece is usually a memcpy. A
// response's small writes (its head, a JSON body) are collected and sent together, in one
// send() when the request ends (end_request()) or before the stream waits for input (a
// "100 Continue" goes out before the body is read); a write of 16 KiB or more is sent at once.
//
// receive_arrived() and request_arrived() let a server wait (in epoll) until a request is all
// there before it gives the request a thread: its head, and its body when the head declares a
// Content-Length of at most kMaxBufferedBody (every JSON call of the API). A larger body, a
// chunked one, or a length that is not a number is left to the thread that serves the request
// (which refuses it, or streams a model upload). A client that asked for "100 Continue" is sent
// one when its small body is awaited; cpp-httplib sends another before it reads the body, as
// HTTP allows (a client skips every 1xx answer before the final one).
//
// An answer that says "Connection: close" (a refused body left unread, say) puts the stream in
// discarding_input(): what the client sends after it is received and dropped, never parsed as
// a request, until the connection is closed. A head of kMaxBufferedHead bytes without its end
// is given to cpp-httplib as it is, and no more of it is waited for (the request fails).
//
// The socket stays blocking; its SO_RCVTIMEO/SO_SNDTIMEO bound each recv()/send(), and
// is_readable()/is_writable() wait at most the timeouts given here. Owns the socket: the
// destructor shuts it down and closes it. Not thread-safe: one request at a time, served by
// one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <httplib.h>

namespace gridexp {

class BufferedSocketStream final : public httplib::Stream {
 public:
  static constexpr std::size_t kSmallReceiveBuffer = 16 << 10;
  static constexpr std::size_t kLargeReceiveBuffer = 256 << 10;
  // A request whose body has brought this much switches to the large buffer.
  static constexpr std::size_t kLargeBodyBytes = 64 << 10;
  // The longest body received whole before its request is served.
  static constexpr std::size_t kMaxBufferedBody = 64 << 10;
  // A head this long without its end is served as it is (cpp-httplib refuses it).
  static constexpr std::size_t kMaxBufferedHead = kSmallReceiveBuffer;
  static constexpr std::size_t kSendBuffer = 16 << 10;

  BufferedSocketStream(int socket, std::chrono::milliseconds read_timeout,
                       std::chrono::milliseconds write_timeout);
  ~BufferedSocketStream() override;
  BufferedSocketStream(const BufferedSocketStream&) = delete;
  BufferedSocketStream& operator=(const BufferedSocketStream&) = delete;

  // httplib::Stream.
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* data, std::size_t size) override;
  ssize_t write(const char* data, std::size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  int socket() const override { return socket_; }

  const std::string& remote_ip() const { return remote_ip_; }
  int remote_port() const { return remote_port_; }
  const std::string& local_ip() const { return local_ip_; }
  int local_port() const { return local_port_; }

  // Bytes received and not yet read: the start of a request the client pipelined.
  bool has_buffered_input() const { return received_at_ < received_end_; }
  // Bytes that arrived at the socket and are not received yet (none once the client closed).
  bool socket_has_input() const;
  // Adds to the buffer what has arrived, without waiting, until the next request has arrived;
  // false once the client has closed the connection (or it failed).
  bool receive_arrived();
  // Whether the next request is buffered as far as it must be before it is served: its whole
  // head (up to its blank line, or kMaxBufferedHead bytes without one) and, for a
  // Content-Length of at most kMaxBufferedBody, its whole body.
  bool request_arrived() const { return !discarding_ && awaited().bytes == 0; }
  // Whether an answer said "Connection: close" (see above): the connection only waits to be
  // closed, which it should be once the client has stopped sending (closing a socket with
  // unread input resets the connection, and the client may lose the answer).
  bool discarding_input() const { return discarding_; }
  // Sends what is buffered and goes back to the small receive buffer (dropping what is
  // buffered once the answer said "Connection: close"); false when the connection can no
  // longer be written to.
  bool end_request();

 private:
  bool flush() const;
  // Waits for and receives the next bytes; only when nothing is buffered.
  bool fill() const;
  // A receive buffer of `capacity` (the buffered bytes are dropped if it changes).
  void use_buffer(std::size_t capacity) const;
  // Moves the unread bytes to the front of a buffer of at least `capacity`.
  void keep_unread(std::size_t capacity);
  struct Awaited {
    std::size_t bytes = 0;           // what must be buffered before the request is served; 0: it is
    bool continue_expected = false;  // its body is awaited, and the client awaits a 100
  };
  Awaited awaited() const;
  // receive_arrived() once the answer closes the connection: receives what came, to drop it.
  bool discard_arrived();
  // Sends "100 Continue" for the request being received.
  bool send_continue();

  int socket_;
  std::chrono::milliseconds read_timeout_;
  std::chrono::milliseconds write_timeout_;
  std::string remote_ip_;
  int remote_port_ = 0;
  std::string local_ip_;
  int local_port_ = 0;
  // Mutable: is_readable() is const in httplib::Stream, yet must send what is buffered
  // before it waits for the client's next bytes.
  mutable std::unique_ptr<char[]> received_;
  mutable std::size_t received_capacity_ = 0;
  mutable std::size_t received_at_ = 0;
  mutable std::size_t received_end_ = 0;
  mutable std::size_t request_bytes_ = 0;
  mutable std::string unsent_;
  mutable bool broken_ = false;
  bool continue_sent_ = false;  // for the request being received
  bool head_cut_ = false;       // the request being served came without its head's end
  bool answer_closes_ = false;
  bool discarding_ = false;
};

}  // namespace gridexp
