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
// Thread-safety: as httplib::Server. close_connections() after listen returns (the destructor
// also calls it): it closes the idle connections and waits for the requests in progress.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <httplib.h>

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
  void close_connections();

 private:
  bool process_and_close_socket(socket_t socket) override;
  bool serve_request(BufferedSocketStream& stream, bool last);
  template <typename Self>
  static bool process(Self& server, BufferedSocketStream& stream, bool last, bool& closed);

  const int threads_;
  std::once_flag started_;
  std::unique_ptr<ConnectionService> connections_;
};

}  // namespace gridexp
