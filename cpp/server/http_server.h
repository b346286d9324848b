// HttpServer: cpp-httplib's server, with its connections served by a ConnectionService.
//
// cpp-httplib gives every accepted connection a pool thread of its own until the connection
// closes; between requests that thread polls the socket every 10 ms. Here its accept loop
// hands each connection to a ConnectionService instead (through the virtual
// process_and_close_socket), which serves it with `threads` threads in all: an idle
// keep-alive connection holds no thread, and a request is read and answered through a
// BufferedSocketStream. Routing, handlers and everything set on the httplib::Server stay as
// they are. The listen backlog is SOMAXCONN (cpp-httplib's is 5).
//
// Thread-safety: as httplib::Server. close_connections() after serve returns (the destructor
// also calls it): it closes the idle connections and waits for the requests in progress.
#pragma once

#include <memory>
#include <string>

#include <httplib.h>

#include "common/status.h"
#include "server/connection_service.h"

namespace gridexp {

class HttpServer final : public httplib::Server {
 public:
  // `threads`: requests served at once.
  explicit HttpServer(int threads);
  ~HttpServer() override;

  // Binds to `host`:`port` (0: any free port) and listens with a backlog of SOMAXCONN;
  // returns the port, or -1 if it cannot bind.
  int bind(const std::string& host, int port);
  // Starts the connection threads with the settings made so far (set_*() before this), then
  // runs the accept loop until stop(). An error when the threads cannot start, or the accept
  // loop fails.
  Status serve();
  void close_connections();

 private:
  // serve() in their place: they would accept without the connection threads.
  using httplib::Server::listen;
  using httplib::Server::listen_after_bind;
  bool process_and_close_socket(socket_t socket) override;
  bool serve_request(BufferedSocketStream& stream, bool last);
  template <typename Self>
  static bool process(Self& server, BufferedSocketStream& stream, bool last, bool& closed);

  const int threads_;
  std::unique_ptr<ConnectionService> connections_;
};

}  // namespace gridexp
