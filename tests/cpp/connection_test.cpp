// HttpServer's connection handling (ConnectionService, BufferedSocketStream) against real
// loopback sockets: many keep-alive connections on few threads, pipelined requests, the idle
// timeout, the per-connection request limit, small bodies received before a thread is given,
// large and chunked bodies, the client's address, and a stop with requests in progress.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/buffered_socket_stream.h"
#include "server/http_server.h"

namespace gridexp {
namespace {

// An HttpServer on a free loopback port, listening on a thread of its own until destroyed.
class RunningServer {
 public:
  explicit RunningServer(int threads, std::function<void(HttpServer&)> routes,
                         time_t idle_timeout_s = 30, std::size_t max_requests = 1000,
                         time_t read_timeout_s = 30)
      : server_(threads) {
    server_.set_keep_alive_timeout(idle_timeout_s);
    server_.set_keep_alive_max_count(max_requests);
    server_.set_read_timeout(read_timeout_s);
    server_.set_write_timeout(30);
    routes(server_);
    port_ = server_.bind("127.0.0.1", 0);
    listening_ = std::thread([this] { EXPECT_TRUE(server_.serve().is_ok()); });
    // stop() is ignored until the accept loop runs.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~RunningServer() { stop(); }

  void stop() {
    if (!listening_.joinable()) return;
    server_.stop();
    listening_.join();
    server_.close_connections();
  }
  int port() const { return port_; }
  HttpServer& server() { return server_; }

 private:
  HttpServer server_;
  int port_ = 0;
  std::thread listening_;
};

// A blocking loopback socket with a receive timeout, for requests written byte for byte.
class RawConnection {
 public:
  explicit RawConnection(int port) : socket_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{30, 0};
    setsockopt(socket_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    connected_ = ::connect(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { ::close(socket_); }

  bool connected() const { return connected_; }
  int socket() const { return socket_; }
  void send_text(const std::string& text) {
    ASSERT_EQ(::send(socket_, text.data(), text.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(text.size()));
  }
  // Reads until `text` has arrived `times` times in all, or the peer closes (then returns
  // what came), or the 30 s receive timeout passes (then fails the test).
  std::string receive_until(const std::string& text, int times = 1) {
    std::string received;
    char buffer[4096];
    while (count(received, text) < times) {
      ssize_t got = ::recv(socket_, buffer, sizeof buffer, 0);
      if (got == 0) break;
      if (got < 0) {
        ADD_FAILURE() << "no answer within 30 s (errno " << errno << ")";
        break;
      }
      received.append(buffer, static_cast<std::size_t>(got));
    }
    return received;
  }
  // True once the server has closed the connection (recv returns 0); false if it is still
  // open after the receive timeout or sends something.
  bool closed_by_server() {
    char byte;
    return ::recv(socket_, &byte, 1, 0) == 0;
  }

 private:
  static int count(const std::string& haystack, const std::string& needle) {
    int found = 0;
    for (std::size_t at = haystack.find(needle); at != std::string::npos;
         at = haystack.find(needle, at + needle.size())) {
      ++found;
    }
    return found;
  }

  int socket_;
  bool connected_ = false;
};

void hello_route(HttpServer& server) {
  server.Get("/hello", [](const httplib::Request& request, httplib::Response& response) {
    response.set_content("hello " + request.get_param_value("n"), "text/plain");
  });
}

// POST /echo answers "got <the body>".
void echo_route(HttpServer& server) {
  server.Post("/echo", [](const httplib::Request& request, httplib::Response& response) {
    response.set_content("got " + request.body, "text/plain");
  });
}

std::string echo_head(std::size_t length, const std::string& extra_headers = "") {
  return "POST /echo HTTP/1.1\r\nHost: x\r\n" + extra_headers +
         "Content-Length: " + std::to_string(length) + "\r\n\r\n";
}

// GET /slow, whose requests wait inside the handler until release(): holds serving threads.
// Declare it before the RunningServer that installs it (the handler refers to it).
class SlowRoute {
 public:
  void install(HttpServer& server) {
    server.Get("/slow", [this](const httplib::Request&, httplib::Response& response) {
      std::unique_lock lock(mutex_);
      ++inside_;
      changed_.notify_all();
      changed_.wait(lock, [this] { return released_; });
      response.set_content("finished", "text/plain");
    });
  }
  // Whether `count` requests are inside the handler within 20 s.
  bool wait_until_inside(int count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(20), [&] { return inside_ >= count; });
  }
  int inside() {
    std::lock_guard lock(mutex_);
    return inside_;
  }
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int inside_ = 0;
  bool released_ = false;
};

TEST(HttpServerTest, ManyKeepAliveConnectionsAreServedByTwoThreads) {
  // With a thread per connection, the third client would wait for the first two to close (30 s
  // of idle timeout here, past the clients' 20 s read timeout).
  RunningServer running(2, hello_route);
  std::vector<std::unique_ptr<httplib::Client>> clients;
  for (int i = 0; i < 24; ++i) {
    clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", running.port()));
    clients.back()->set_keep_alive(true);
    clients.back()->set_read_timeout(20);
  }
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      std::string n = std::to_string(round * 100 + static_cast<int>(i));
      httplib::Result answer = clients[i]->Get("/hello?n=" + n);
      ASSERT_TRUE(answer) << "round " << round << ", client " << i << ": "
                          << httplib::to_string(answer.error());
      EXPECT_EQ(answer->body, "hello " + n);
    }
  }
}

TEST(HttpServerTest, ConcurrentClientsOnFewThreadsAllGetTheirOwnAnswers) {
  RunningServer running(3, hello_route);
  std::atomic<int> right{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", running.port());
      client.set_keep_alive(true);
      client.set_read_timeout(20);
      for (int i = 0; i < 200; ++i) {
        std::string n = std::to_string(t * 1000 + i);
        httplib::Result answer = client.Get("/hello?n=" + n);
        if (answer && answer->body == "hello " + n) ++right;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(right, 8 * 200);
}

TEST(HttpServerTest, AsManyRequestsAsThreadsRunAtOnce) {
  // Four threads wait in epoll; the other four are spares, woken as the four are taken.
  constexpr int kThreads = 8;
  SlowRoute slow;
  RunningServer running(kThreads, [&](HttpServer& server) { slow.install(server); });
  std::vector<std::unique_ptr<RawConnection>> connections;
  for (int i = 0; i < kThreads; ++i) {
    connections.push_back(std::make_unique<RawConnection>(running.port()));
    connections.back()->send_text("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  EXPECT_TRUE(slow.wait_until_inside(kThreads))
      << slow.inside() << " of " << kThreads << " requests got a thread";
  slow.release();
  for (auto& connection : connections) {
    EXPECT_NE(connection->receive_until("finished").find("finished"), std::string::npos);
  }
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  RunningServer running(2, hello_route);
  RawConnection connection(running.port());
  ASSERT_TRUE(connection.connected());
  // Both requests in one send: the second is already buffered when the first is answered.
  connection.send_text(
      "GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /hello?n=2 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string answers = connection.receive_until("hello 2");
  std::size_t first = answers.find("hello 1");
  std::size_t second = answers.find("hello 2");
  ASSERT_NE(first, std::string::npos) << answers;
  ASSERT_NE(second, std::string::npos) << answers;
  EXPECT_LT(first, second);
  // And the connection still serves a request sent later.
  connection.send_text("GET /hello?n=3 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(connection.receive_until("hello 3").find("hello 3"), std::string::npos);
}

TEST(HttpServerTest, APartialRequestHeadHoldsNoThread) {
  // One thread: if it waited for the rest of the slow client's head (30 s read timeout), the
  // other client would get no answer within its 20 s.
  RunningServer running(1, hello_route);
  RawConnection slow(running.port());
  slow.send_text("GET /hello?n=1 HTTP/1.1\r\nHo");
  httplib::Client other("127.0.0.1", running.port());
  other.set_read_timeout(20);
  for (int i = 0; i < 3; ++i) {
    httplib::Result answer = other.Get("/hello?n=2");
    ASSERT_TRUE(answer) << httplib::to_string(answer.error());
    EXPECT_EQ(answer->body, "hello 2");
  }
  slow.send_text("st: x\r\n");
  slow.send_text("\r\n");
  EXPECT_NE(slow.receive_until("hello 1").find("hello 1"), std::string::npos);
}

TEST(HttpServerTest, APartialRequestHeadIsClosedAfterTheKeepAliveTimeout) {
  RunningServer running(2, hello_route, /*idle_timeout_s=*/1);
  RawConnection slow(running.port());
  slow.send_text("GET /hello?n=1 HTTP/1.1\r\n");
  EXPECT_TRUE(slow.closed_by_server());
}

TEST(HttpServerTest, ARequestHeadSentAByteAtATimeIsClosedAfterTheReadTimeout) {
  // Each byte comes well within the 1 s idle timeout; the head as a whole must still arrive
  // within the 2 s read timeout.
  RunningServer running(2, hello_route, /*idle_timeout_s=*/1, /*max_requests=*/1000,
                        /*read_timeout_s=*/2);
  RawConnection slow(running.port());
  const std::string head = "GET /hello?n=1 HTTP/1.1\r\nX-Padding: ";
  const auto started = std::chrono::steady_clock::now();
  bool closed = false;
  for (int sent = 0; !closed && sent < 100; ++sent) {
    // Once the server has closed, a send fails (EPIPE/ECONNRESET) or the peek sees the end.
    if (::send(slow.socket(), sent < static_cast<int>(head.size()) ? &head[sent] : "x", 1,
               MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    char byte;
    closed = ::recv(slow.socket(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  EXPECT_TRUE(closed) << "still open after 20 s of a byte every 200 ms";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
}

TEST(HttpServerTest, APartialSmallBodyHoldsNoThread) {
  // One thread: if it waited for the rest of the slow client's body (30 s read timeout), the
  // other client would get no answer within its 20 s (issue 14, item 2).
  RunningServer running(1, [](HttpServer& server) {
    hello_route(server);
    echo_route(server);
  });
  RawConnection slow(running.port());
  slow.send_text(echo_head(10) + "01234");
  httplib::Client other("127.0.0.1", running.port());
  other.set_read_timeout(20);
  for (int i = 0; i < 3; ++i) {
    httplib::Result answer = other.Get("/hello?n=2");
    ASSERT_TRUE(answer) << httplib::to_string(answer.error());
    EXPECT_EQ(answer->body, "hello 2");
  }
  slow.send_text("56789");
  EXPECT_NE(slow.receive_until("got 0123456789").find("got 0123456789"), std::string::npos);
}

TEST(HttpServerTest, ManySlowBodiesOnOneThreadLeaveItFree) {
  // The campaign's attack, scaled down: more connections than threads, each with a body
  // that trickles in.
  RunningServer running(2, [](HttpServer& server) {
    hello_route(server);
    echo_route(server);
  });
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<RawConnection>(running.port()));
    slow.back()->send_text(echo_head(4096) + "x");
  }
  httplib::Client other("127.0.0.1", running.port());
  other.set_read_timeout(20);
  httplib::Result answer = other.Get("/hello?n=3");
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->body, "hello 3");
}

TEST(HttpServerTest, ASmallBodySentAByteAtATimeIsClosedAfterTheReadTimeout) {
  // As for a head: each byte within the 1 s idle timeout, the whole request not within the
  // 2 s read timeout.
  RunningServer running(2, echo_route, /*idle_timeout_s=*/1, /*max_requests=*/1000,
                        /*read_timeout_s=*/2);
  RawConnection slow(running.port());
  slow.send_text(echo_head(1000));
  const auto started = std::chrono::steady_clock::now();
  bool closed = false;
  for (int sent = 0; !closed && sent < 100; ++sent) {
    if (::send(slow.socket(), "x", 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    char byte;
    closed = ::recv(slow.socket(), &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  EXPECT_TRUE(closed) << "still open after 20 s of a byte every 200 ms";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15));
}

TEST(HttpServerTest, APartialSmallBodyIsClosedAfterTheKeepAliveTimeout) {
  RunningServer running(2, echo_route, /*idle_timeout_s=*/1);
  RawConnection slow(running.port());
  slow.send_text(echo_head(10) + "01234");
  EXPECT_TRUE(slow.closed_by_server());
}

TEST(HttpServerTest, BodiesUpToTheBufferedLimitArriveWholeInPieces) {
  RunningServer running(2, echo_route);
  RawConnection connection(running.port());
  for (std::size_t length :
       {std::size_t{0}, std::size_t{1}, BufferedSocketStream::kSmallReceiveBuffer + 1,
        BufferedSocketStream::kMaxBufferedBody, BufferedSocketStream::kMaxBufferedBody + 1}) {
    std::string body(length, 'b');
    if (length > 0) body.back() = 'e';
    connection.send_text(echo_head(length));
    for (std::size_t at = 0; at < body.size(); at += 20000) {
      connection.send_text(body.substr(at, 20000));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string answer = connection.receive_until("got " + body);
    EXPECT_NE(answer.find("got " + body), std::string::npos) << "length " << length;
  }
}

TEST(HttpServerTest, PipelinedRequestsWithBodiesAreAnsweredInOrder) {
  RunningServer running(2, [](HttpServer& server) {
    hello_route(server);
    echo_route(server);
  });
  RawConnection connection(running.port());
  connection.send_text(echo_head(3) + "one" + echo_head(3) + "two" +
                       "GET /hello?n=3 HTTP/1.1\r\nHost: x\r\n\r\n" + echo_head(4) + "fo");
  std::string answers = connection.receive_until("hello 3");
  std::size_t one = answers.find("got one");
  std::size_t two = answers.find("got two");
  ASSERT_NE(one, std::string::npos) << answers;
  ASSERT_NE(two, std::string::npos) << answers;
  EXPECT_LT(one, two);
  connection.send_text("ur");
  EXPECT_NE(connection.receive_until("got four").find("got four"), std::string::npos);
}

TEST(HttpServerTest, AClientAwaiting100ContinueGetsItBeforeItsSmallBodyIsReceived) {
  RunningServer running(1, echo_route);
  RawConnection connection(running.port());
  connection.send_text(echo_head(5, "Expect: 100-continue\r\n"));
  // The 30 s receive timeout fails the test if the server waits for the body without it.
  EXPECT_NE(connection.receive_until("100 Continue").find("HTTP/1.1 100 Continue\r\n\r\n"),
            std::string::npos);
  connection.send_text("hello");
  EXPECT_NE(connection.receive_until("got hello").find("got hello"), std::string::npos);
}

TEST(HttpServerTest, AfterAnAnswerThatClosesWhatTheClientSendsIsNeverARequest) {
  // A refusal that leaves the body unread (as the gate's 401, 411 and 413 do): the bytes that
  // follow must not be served as a request of their own.
  RunningServer running(
      2,
      [](HttpServer& server) {
        hello_route(server);
        server.set_pre_routing_handler(
            [](const httplib::Request& request, httplib::Response& response) {
              if (request.path != "/refuse") return httplib::Server::HandlerResponse::Unhandled;
              response.set_header("Connection", "close");
              response.status = 413;
              return httplib::Server::HandlerResponse::Handled;
            });
      },
      /*idle_timeout_s=*/1);
  RawConnection connection(running.port());
  connection.send_text("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  connection.send_text("GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string answers = connection.receive_until("hello 1");  // until the server closes
  EXPECT_NE(answers.find("HTTP/1.1 413"), std::string::npos) << answers;
  EXPECT_EQ(answers.find("hello 1"), std::string::npos) << answers;
}

TEST(HttpServerTest, AHeadTooLongHoldsNoThreadWaitingForItsEnd) {
  // One thread: had it waited for the end of the line (30 s read timeout), the other client
  // would get no answer within its 20 s.
  RunningServer running(1, hello_route);
  RawConnection endless(running.port());
  endless.send_text("GET /" + std::string(BufferedSocketStream::kMaxBufferedHead + 10, 'a'));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  httplib::Client other("127.0.0.1", running.port());
  other.set_read_timeout(20);
  httplib::Result answer = other.Get("/hello?n=2");
  ASSERT_TRUE(answer) << httplib::to_string(answer.error());
  EXPECT_EQ(answer->body, "hello 2");
  EXPECT_TRUE(endless.closed_by_server());
}

TEST(HttpServerTest, AnIdleConnectionIsClosedAfterTheKeepAliveTimeout) {
  RunningServer running(2, hello_route, /*idle_timeout_s=*/1);
  RawConnection connection(running.port());
  connection.send_text("GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(connection.receive_until("hello 1").find("hello 1"), std::string::npos);
  // The receive timeout is 30 s: only the server's idle timeout ends this wait with a close.
  EXPECT_TRUE(connection.closed_by_server());
}

TEST(HttpServerTest, ARequestArrivingOnAConnectionIdlePastTheTimeoutIsAnswered) {
  // The one serving thread is held by a slow request while another connection, idle for
  // longer than the keep-alive timeout, sends a request. When the thread comes back, the
  // idle sweep must not close that connection with its request unanswered (a client cannot
  // tell whether a POST it sent then ran).
  SlowRoute slow;
  RunningServer running(
      1,
      [&](HttpServer& server) {
        hello_route(server);
        slow.install(server);
      },
      /*idle_timeout_s=*/1);
  RawConnection waiting(running.port());
  waiting.send_text("GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(waiting.receive_until("hello 1").find("hello 1"), std::string::npos);
  RawConnection busy(running.port());
  busy.send_text("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(slow.wait_until_inside(1));
  // Past the 1 s timeout (and the sweep's 250 ms period), with no thread free to sweep.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  waiting.send_text("GET /hello?n=2 HTTP/1.1\r\nHost: x\r\n\r\n");
  slow.release();
  EXPECT_NE(busy.receive_until("finished").find("finished"), std::string::npos);
  EXPECT_NE(waiting.receive_until("hello 2").find("hello 2"), std::string::npos);
}

TEST(HttpServerTest, TheLastRequestAllowedOnAConnectionIsAnsweredWithClose) {
  RunningServer running(2, hello_route, 30, /*max_requests=*/3);
  RawConnection connection(running.port());
  for (int i = 1; i <= 3; ++i) {
    connection.send_text("GET /hello?n=" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string answer = connection.receive_until("hello " + std::to_string(i));
    EXPECT_EQ(answer.find("Connection: close") != std::string::npos, i == 3) << answer;
  }
  EXPECT_TRUE(connection.closed_by_server());
}

TEST(HttpServerTest, ARequestAskingForCloseClosesTheConnection) {
  RunningServer running(2, hello_route);
  RawConnection connection(running.port());
  connection.send_text("GET /hello?n=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(connection.receive_until("hello 1").find("hello 1"), std::string::npos);
  EXPECT_TRUE(connection.closed_by_server());
}

TEST(HttpServerTest, LargeAndChunkedBodiesArriveWhole) {
  std::string body(5 * 1024 * 1024 + 123, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) % 251);
  std::mutex mutex;
  std::string received;
  RunningServer running(2, [&](HttpServer& server) {
    server.Post("/upload", [&](const httplib::Request&, httplib::Response& response,
                               const httplib::ContentReader& reader) {
      std::string whole;
      reader([&](const char* data, std::size_t length) {
        whole.append(data, length);
        return true;
      });
      std::lock_guard lock(mutex);
      received = std::move(whole);
      response.set_content(std::to_string(received.size()), "text/plain");
    });
  });
  httplib::Client client("127.0.0.1", running.port());
  client.set_read_timeout(30);
  client.set_write_timeout(30);
  httplib::Result sized = client.Post("/upload", body, "application/octet-stream");
  ASSERT_TRUE(sized);
  EXPECT_EQ(sized->body, std::to_string(body.size()));
  {
    std::lock_guard lock(mutex);
    EXPECT_TRUE(received == body);
  }
  // Without a length: chunked transfer encoding, in uneven pieces.
  httplib::Result chunked = client.Post(
      "/upload",
      [&](std::size_t offset, httplib::DataSink& sink) {
        std::size_t piece = std::min<std::size_t>(body.size() - offset, 70001);
        sink.write(body.data() + offset, piece);
        if (offset + piece == body.size()) sink.done();
        return true;
      },
      "application/octet-stream");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->body, std::to_string(body.size()));
  std::lock_guard lock(mutex);
  EXPECT_TRUE(received == body);
}

TEST(HttpServerTest, HandlersSeeTheClientsAddress) {
  RunningServer running(2, [](HttpServer& server) {
    server.Get("/whoami", [](const httplib::Request& request, httplib::Response& response) {
      response.set_content(request.remote_addr, "text/plain");
    });
  });
  httplib::Client client("127.0.0.1", running.port());
  httplib::Result answer = client.Get("/whoami");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->body, "127.0.0.1");
}

TEST(HttpServerTest, StopAnswersTheRequestInProgressAndClosesIdleConnections) {
  SlowRoute slow;
  RunningServer running(2, [&](HttpServer& server) {
    hello_route(server);
    slow.install(server);
  });
  RawConnection idle(running.port());
  idle.send_text("GET /hello?n=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(idle.receive_until("hello 1").find("hello 1"), std::string::npos);

  RawConnection busy(running.port());
  busy.send_text("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(slow.wait_until_inside(1));
  std::thread stopping([&] { running.stop(); });
  EXPECT_TRUE(idle.closed_by_server());
  slow.release();
  EXPECT_NE(busy.receive_until("finished").find("finished"), std::string::npos);
  stopping.join();
  EXPECT_TRUE(busy.closed_by_server());
}

// BufferedSocketStream alone, over a socket pair.
class StreamPair : public ::testing::Test {
 protected:
  void SetUp() override {
    int sockets[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    stream_ = std::make_unique<BufferedSocketStream>(sockets[0], std::chrono::milliseconds(200),
                                                     std::chrono::milliseconds(200));
    peer_ = sockets[1];
  }
  void TearDown() override { ::close(peer_); }

  // What the peer can read without waiting.
  std::string available_to_peer() {
    std::string got;
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(peer_, buffer, sizeof buffer, MSG_DONTWAIT)) > 0) {
      got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
  }

  std::unique_ptr<BufferedSocketStream> stream_;
  int peer_ = -1;
};

TEST_F(StreamPair, SmallWritesWaitForTheEndOfTheRequest) {
  EXPECT_EQ(stream_->write("HTTP/1.1 200 OK\r\n", 17), 17);
  EXPECT_EQ(stream_->write("\r\n", 2), 2);
  EXPECT_EQ(available_to_peer(), "");
  EXPECT_TRUE(stream_->end_request());
  EXPECT_EQ(available_to_peer(), "HTTP/1.1 200 OK\r\n\r\n");
}

// cpp-httplib 0.11 writes an answer's headers sorted (Connection first), 0.18 in any order.
TEST_F(StreamPair, AnAnswerSayingConnectionCloseFirstEndsTheInput) {
  std::string head =
      "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  ASSERT_EQ(stream_->write(head.data(), head.size()), static_cast<ssize_t>(head.size()));
  EXPECT_TRUE(stream_->end_request());
  EXPECT_TRUE(stream_->discarding_input());
}

TEST_F(StreamPair, AnAnswerSayingConnectionCloseLastEndsTheInput) {
  std::string head =
      "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(stream_->write(head.data(), head.size()), static_cast<ssize_t>(head.size()));
  EXPECT_TRUE(stream_->end_request());
  EXPECT_TRUE(stream_->discarding_input());
}

TEST_F(StreamPair, AnAnswerThatKeepsTheConnectionLeavesTheInputAlone) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Note: Connection: close\r\n\r\n";
  ASSERT_EQ(stream_->write(head.data(), head.size()), static_cast<ssize_t>(head.size()));
  EXPECT_TRUE(stream_->end_request());
  EXPECT_FALSE(stream_->discarding_input());
}

TEST_F(StreamPair, WaitingForInputSendsWhatIsBufferedFirst) {
  // As a "100 Continue" must reach the client before the server waits for the body.
  EXPECT_EQ(stream_->write("HTTP/1.1 100 Continue\r\n\r\n", 25), 25);
  EXPECT_FALSE(stream_->is_readable());  // nothing from the peer within 200 ms
  EXPECT_EQ(available_to_peer(), "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(stream_->write("x", 1), 1);
  ASSERT_EQ(::send(peer_, "body", 4, 0), 4);
  char buffer[8];
  EXPECT_EQ(stream_->read(buffer, sizeof buffer), 4);
  EXPECT_EQ(available_to_peer(), "x");
}

TEST_F(StreamPair, ALargeWriteGoesOutAfterWhatWasBufferedAndInOrder) {
  std::string head = "head:";
  std::string large(3 * BufferedSocketStream::kSendBuffer, 'L');
  EXPECT_EQ(stream_->write(head.data(), head.size()), static_cast<ssize_t>(head.size()));
  std::string sent_back;
  std::thread reader([&] {
    char buffer[65536];
    while (sent_back.size() < head.size() + large.size() + 4) {
      ssize_t n = ::recv(peer_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      sent_back.append(buffer, static_cast<std::size_t>(n));
    }
  });
  std::size_t written = 0;
  while (written < large.size()) {
    ssize_t n = stream_->write(large.data() + written, large.size() - written);
    ASSERT_GT(n, 0);
    written += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(stream_->write(":end", 4), 4);
  EXPECT_TRUE(stream_->end_request());
  reader.join();
  EXPECT_EQ(sent_back, head + large + ":end");
}

TEST_F(StreamPair, ReadsServeByteByByteAndTellWhatWasPipelined) {
  ASSERT_EQ(::send(peer_, "ab", 2, 0), 2);
  char byte = 0;
  EXPECT_EQ(stream_->read(&byte, 1), 1);
  EXPECT_EQ(byte, 'a');
  EXPECT_TRUE(stream_->has_buffered_input());
  EXPECT_EQ(stream_->read(&byte, 1), 1);
  EXPECT_EQ(byte, 'b');
  EXPECT_FALSE(stream_->has_buffered_input());
  ::shutdown(peer_, SHUT_WR);
  EXPECT_EQ(stream_->read(&byte, 1), -1);  // the peer closed
}

TEST_F(StreamPair, ALargeBodyIsReadWholeAcrossBufferSizes) {
  std::string body(BufferedSocketStream::kLargeBodyBytes * 5 + 17, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i % 253);
  std::thread writer([&] {
    std::size_t sent = 0;
    while (sent < body.size()) {
      ssize_t n = ::send(peer_, body.data() + sent, body.size() - sent, 0);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
  });
  std::string got;
  char piece[4096];
  while (got.size() < body.size()) {
    ssize_t n = stream_->read(piece, std::min(sizeof piece, body.size() - got.size()));
    ASSERT_GT(n, 0);
    got.append(piece, static_cast<std::size_t>(n));
  }
  writer.join();
  EXPECT_TRUE(got == body);
  EXPECT_TRUE(stream_->end_request());
}

TEST_F(StreamPair, ARequestHasArrivedWithItsHeadAndSmallBody) {
  EXPECT_FALSE(stream_->request_arrived());
  auto arrives = [&](const std::string& text) {
    EXPECT_EQ(::send(peer_, text.data(), text.size(), 0), static_cast<ssize_t>(text.size()));
    EXPECT_TRUE(stream_->receive_arrived());
    return stream_->request_arrived();
  };
  EXPECT_FALSE(arrives("POST /x HTTP/1.1\r\ncontent-length:  \t4 \r\n"));
  EXPECT_FALSE(arrives("\r\nab"));  // the head, not the body
  EXPECT_TRUE(arrives("cd"));
}

TEST_F(StreamPair, AHeadIsEnoughWhenTheBodyIsLargeChunkedOrItsLengthUnreadable) {
  for (const std::string& framing :
       {"Content-Length: " + std::to_string(BufferedSocketStream::kMaxBufferedBody + 1),
        std::string("Transfer-Encoding: chunked"),
        std::string("Content-Length: 99999999999999999999999"), std::string("Content-Length: -1"),
        std::string("Content-Length: 1\r\nContent-Length: 1")}) {
    TearDown();
    SetUp();
    std::string head = "POST /x HTTP/1.1\r\n" + framing + "\r\n\r\n";
    ASSERT_EQ(::send(peer_, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    EXPECT_TRUE(stream_->receive_arrived());
    EXPECT_TRUE(stream_->request_arrived()) << framing;
  }
}

TEST_F(StreamPair, AHeadTooLongIsServedAsItIs) {
  std::string head =
      "GET /x HTTP/1.1\r\nX-Long: " + std::string(BufferedSocketStream::kMaxBufferedHead, 'a');
  ASSERT_EQ(::send(peer_, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  EXPECT_TRUE(stream_->receive_arrived());
  EXPECT_TRUE(stream_->request_arrived());
}

TEST_F(StreamPair, ABufferedBodyLargerThanTheReceiveBufferIsReadWhole) {
  std::string body(BufferedSocketStream::kMaxBufferedBody, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i % 251);
  std::string request =
      "PUT /x HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::thread writer([&] { ::send(peer_, request.data(), request.size(), 0); });
  while (!stream_->request_arrived()) ASSERT_TRUE(stream_->receive_arrived());
  writer.join();
  std::string got(request.size(), '\0');
  std::size_t at = 0;
  while (at < got.size()) {
    ssize_t n = stream_->read(got.data() + at, got.size() - at);
    ASSERT_GT(n, 0);
    at += static_cast<std::size_t>(n);
  }
  EXPECT_FALSE(stream_->has_buffered_input());
  EXPECT_TRUE(got == request);
}

TEST_F(StreamPair, WritesFailOnceThePeerIsGone) {
  ::close(peer_);
  peer_ = -1;
  EXPECT_EQ(stream_->write("abc", 3), 3);  // buffered
  EXPECT_FALSE(stream_->end_request());
  EXPECT_EQ(stream_->write("abc", 3), -1);
}

}  // namespace
}  // namespace gridexp
