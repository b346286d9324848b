// ConnectionService: serves keep-alive HTTP connections with a fixed number of threads.
//
// An idle connection waits in one epoll set, not on a thread of its own. When a request
// arrives, one of the threads (each waits in epoll_wait; the kernel wakes one per ready
// connection) takes the connection, calls `serve` for that request and for any the client
// pipelined behind it, and parks the connection again (EPOLLONESHOT: only one thread has it
// at a time). A thread that parks a connection goes straight on to the next ready one, so a
// busy server hands requests over without a thread waking per request, and a thousand idle
// workers cost a thousand registry entries, not a thousand sleeping threads.
//
// A connection is closed when `serve` says so, after `max_requests` requests (the last is
// served with `last` set, to answer "Connection: close"), or when it has been idle for
// `idle_timeout`. stop() closes the idle connections and returns once every request in
// progress has been answered.
//
// Thread-safety: adopt() from any thread; stop() once, from a thread that is not serving (it
// joins them); the destructor stops.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/buffered_socket_stream.h"

namespace gridexp {

class ConnectionService {
 public:
  struct Options {
    int threads = 64;
    std::chrono::milliseconds idle_timeout{2000};
    std::size_t max_requests = 100;
    std::chrono::milliseconds read_timeout{60000};
    std::chrono::milliseconds write_timeout{60000};
  };
  // Serves one request from `stream`; `last` when the connection closes after it. Returns
  // whether the connection may carry another request.
  using Serve = std::function<bool(BufferedSocketStream& stream, bool last)>;

  ConnectionService(Options options, Serve serve);
  ~ConnectionService();
  ConnectionService(const ConnectionService&) = delete;
  ConnectionService& operator=(const ConnectionService&) = delete;

  // Takes an accepted socket (blocking, its timeouts set) and serves it; closes it at once
  // once stop() has begun.
  void adopt(int socket);
  void stop();

  std::size_t open_connections() const;

 private:
  struct Connection;

  void run();
  Connection* take(std::uint64_t id);
  bool serve_connection(Connection& connection);
  void park_or_close(Connection& connection, bool keep);
  void close_idle_if_due();

  const Options options_;
  const Serve serve_;
  // How often idle connections are looked for (also epoll_wait's timeout).
  const std::chrono::milliseconds idle_check_period_;
  int epoll_ = -1;
  int wake_ = -1;  // an eventfd, readable once stop() begins
  std::atomic<bool> stopping_{false};
  std::once_flag stopped_;

  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::int64_t> next_idle_check_ns_{0};

  std::vector<std::thread> threads_;
};

}  // namespace gridexp
