// LeanHttpClient: one keep-alive HTTP/1.1 connection that POSTs JSON with as little
// client-side work as it can, for the load generator (bench/loadgen.cpp).
//
// The load generator shares the machine's cores with the server it measures, so every
// microsecond it spends per call is taken from the server. cpp-httplib's client cost it ~33 us
// of CPU per trial (a poll() before every read and write, headers in a case-insensitive
// multimap, JSON documents built per call); this one sends the same headers, head and body in
// two send() calls as cpp-httplib does, and reads the answer into one reused buffer, looking
// only at the status code, Content-Length and Connection: ~15 us per trial.
//
// Answers must carry Content-Length (gridexp-server's JSON answers do; a chunked answer is an
// error). A connection the server closed (its 2 s keep-alive idle limit) is reopened by the
// next post(), and post() reports `closed_before_answer` so that a caller can send again what
// the server never answered. Not thread-safe: one client per thread.
#pragma once

#include <string>
#include <string_view>

namespace gridexp::bench {

struct HttpAnswer {
  int status = 0;                     // 0 when no answer arrived
  std::string body;                   // the answer's body when status != 0
  std::string error;                  // why no answer arrived (connect, send, receive, parse)
  bool closed_before_answer = false;  // the connection ended before any byte of an answer
  explicit operator bool() const { return status != 0; }
};

class LeanHttpClient {
 public:
  LeanHttpClient(std::string host, int port, std::string_view bearer_token);
  ~LeanHttpClient();
  LeanHttpClient(const LeanHttpClient&) = delete;
  LeanHttpClient& operator=(const LeanHttpClient&) = delete;

  // POSTs `body` as application/json to `path`, connecting first when not connected.
  HttpAnswer post(std::string_view path, std::string_view body);

 private:
  bool connect_socket(std::string& error);
  void close_socket();
  bool send_all(std::string_view data, std::string& error);
  // Reads one whole answer into `answer`; false (with answer.error set) otherwise.
  bool read_answer(HttpAnswer& answer);

  const std::string host_;
  const int port_;
  std::string fixed_headers_;  // Host, Authorization, Accept, Accept-Encoding, User-Agent, ...
  int fd_ = -1;
  std::string request_;  // the head of each request, reused
  std::string buffer_;   // bytes received and not yet consumed
};

}  // namespace gridexp::bench
