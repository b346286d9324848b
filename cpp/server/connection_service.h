// ConnectionService: serves keep-alive HTTP connections with a fixed number of threads.
//
// An idle connection waits in one epoll set, not on a thread of its own. When a request
// arrives, a thread waiting in epoll_wait (the kernel wakes one per ready connection) takes
// the connection, calls `serve` for that request and for any the client pipelined behind it,
// and parks the connection again (EPOLLONESHOT: only one thread has it at a time). Only
// `waiting_threads` threads wait in epoll at once; the others wait as spares and are woken,
// the most recently active first, when every waiting thread has been taken (many requests at
// once, or long transfers). So a thousand idle workers cost a thousand registry entries, not
// a thousand sleeping threads, and light traffic runs on a few warm threads.
//
// A request is served only once its whole head, and its body when that is small (64 KiB at
// most), have arrived (BufferedSocketStream::request_arrived()): a client that sends part of
// one holds no thread. Only a larger body is read by the thread that serves its request.
//
// A connection is closed when `serve` says so, after `max_requests` requests (the last is
// served with `last` set, to answer "Connection: close"), or when it has been idle for
// `idle_timeout` with nothing sent (a request that arrived after the timeout, before the
// connection was closed, is still served), or when a request's head (and small body) has not
// arrived whole within `read_timeout` of its first part. After an answer that says
// "Connection: close", the connection is closed at once, or, while the client still sends (the
// refused body), once it has been quiet for `idle_timeout` or after `read_timeout`; what it
// sends meanwhile is dropped. stop() closes the idle connections
// and returns once every request in progress has been answered.
//
// start() creates the epoll set and the threads: an error Status (never an exception) when it
// cannot; a service that did not start adopts no connection.
//
// Thread-safety: start() once, before adopt(); adopt() from any thread; stop() once, from a
// thread that is not serving (it joins them); the destructor stops.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "server/buffered_socket_stream.h"

namespace gridexp {

class ConnectionService {
 public:
  struct Options {
    int threads = 64;
    // Threads waiting in epoll at most; the others wait as spares, woken (the most recently
    // active first) only when every waiting thread has been taken. A small set of threads
    // stays busy and warm, where epoll alone would rotate requests through all of them.
    int waiting_threads = 4;
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

  // Creates the epoll set and starts the threads.
  Status start();
  // Takes an accepted socket (blocking, its timeouts set) and serves it; closes it at once
  // once stop() has begun.
  void adopt(int socket);
  void stop();

 private:
  struct Connection;

  void run();
  struct Spare {
    std::condition_variable wake;
    bool woken = false;
  };
  void wait_for_requests(std::unique_lock<std::mutex>& lock, Spare& spare);
  Connection* take(std::uint64_t id);
  bool serve_connection(Connection& connection);
  // Under mutex_.
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

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::int64_t> next_idle_check_ns_{0};
  int waiting_ = 0;             // threads in (or entering) epoll_wait
  std::vector<Spare*> spares_;  // the other idle threads, newest last

  std::vector<std::thread> threads_;
};

}  // namespace gridexp
