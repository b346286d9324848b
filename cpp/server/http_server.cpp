#include "server/http_server.h"

#include <sys/socket.h>

#include <chrono>
#include <string>

namespace gridexp {
namespace {

std::chrono::milliseconds timeout(time_t seconds, time_t microseconds) {
  return std::chrono::milliseconds(seconds * 1000 + microseconds / 1000);
}

}  // namespace

HttpServer::HttpServer(int threads) : threads_(threads) {
  // The accept loop only hands sockets over.
  new_task_queue = [] { return new httplib::ThreadPool(1); };
}

HttpServer::~HttpServer() { close_connections(); }

int HttpServer::bind(const std::string& host, int port) {
  if (port == 0) {
    port = bind_to_any_port(host);
  } else if (!bind_to_port(host, port)) {
    port = -1;
  }
  // cpp-httplib listens with a backlog of 5: a fleet of workers connecting at once would
  // see most connections dropped and retried by the kernel after 1 s and 3 s.
  if (port > 0) ::listen(svr_sock_, SOMAXCONN);
  return port > 0 ? port : -1;
}

void HttpServer::close_connections() {
  if (connections_) connections_->stop();
}

Status HttpServer::serve() {
  // Started here: by then every set_*() has been called.
  ConnectionService::Options options;
  options.threads = threads_;
  options.idle_timeout = std::chrono::seconds(keep_alive_timeout_sec_);
  options.max_requests = keep_alive_max_count_;
  options.read_timeout = timeout(read_timeout_sec_, read_timeout_usec_);
  options.write_timeout = timeout(write_timeout_sec_, write_timeout_usec_);
  connections_ = std::make_unique<ConnectionService>(
      options,
      [this](BufferedSocketStream& stream, bool last) { return serve_request(stream, last); });
  if (Status started = connections_->start(); !started) return started;
  if (!listen_after_bind()) return Status::io_error("the accept loop failed");
  return Status::ok();
}

bool HttpServer::process_and_close_socket(socket_t socket) {
  connections_->adopt(socket);
  return true;
}

// cpp-httplib 0.11 (Debian 12) takes the addresses from the stream; later versions (0.18 in
// Debian 13) as arguments. A template, so that only the branch that compiles is instantiated.
template <typename Self>
bool HttpServer::process(Self& server, BufferedSocketStream& stream, bool last, bool& closed) {
  if constexpr (requires { server.process_request(stream, last, closed, nullptr); }) {
    return server.process_request(stream, last, closed, nullptr);
  } else {
    return server.process_request(stream, stream.remote_ip(), stream.remote_port(),
                                  stream.local_ip(), stream.local_port(), last, closed, nullptr);
  }
}

bool HttpServer::serve_request(BufferedSocketStream& stream, bool last) {
  bool closed = false;
  bool answered = process(*this, stream, last, closed);
  return answered && !closed;
}

}  // namespace gridexp
