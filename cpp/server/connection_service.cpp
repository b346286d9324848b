#include "server/connection_service.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace gridexp {
namespace {

constexpr std::uint64_t kWakeUp = 0;  // connection ids start at 1
constexpr std::uint32_t kWaitForRequest = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct ConnectionService::Connection {
  Connection(int socket, const Options& options)
      : stream(socket, options.read_timeout, options.write_timeout) {}

  std::uint64_t id = 0;
  BufferedSocketStream stream;
  std::size_t served = 0;
  bool busy = false;
  std::int64_t idle_since_ns = 0;
  // When the connection was first parked with part of a request (head or small body), 0
  // with none.
  std::int64_t request_started_ns = 0;
};

ConnectionService::ConnectionService(Options options, Serve serve)
    : options_(options),
      serve_(std::move(serve)),
      idle_check_period_(std::clamp(options.idle_timeout / 4, std::chrono::milliseconds(10),
                                    std::chrono::milliseconds(1000))) {}

Status ConnectionService::start() {
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_ < 0 || wake_ < 0) {
    return Status::io_error(std::string("cannot serve connections: epoll/eventfd: ") +
                            std::strerror(errno));
  }
  // Level-triggered: once written, every thread's epoll_wait sees it.
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.u64 = kWakeUp;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &wake) != 0) {
    return Status::io_error(std::string("cannot serve connections: epoll_ctl: ") +
                            std::strerror(errno));
  }
  const int threads = std::max(options_.threads, 1);
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  return Status::ok();
}

ConnectionService::~ConnectionService() {
  stop();
  if (wake_ >= 0) ::close(wake_);
  if (epoll_ >= 0) ::close(epoll_);
}

void ConnectionService::adopt(int socket) {
  // Its addresses are looked up here, outside the lock; the id is set under it.
  auto connection = std::make_unique<Connection>(socket, options_);
  std::lock_guard lock(mutex_);
  if (stopping_) return;  // closed with it
  connection->id = next_id_++;
  connection->idle_since_ns = steady_ns();
  epoll_event waiting{};
  waiting.events = kWaitForRequest;
  waiting.data.u64 = connection->id;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, socket, &waiting) != 0) return;
  connections_.emplace(connection->id, std::move(connection));
}

void ConnectionService::stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      // The idle ones now; those being served once their request is answered.
      std::erase_if(connections_, [](const auto& entry) { return !entry.second->busy; });
      for (Spare* spare : spares_) {
        spare->woken = true;
        spare->wake.notify_one();
      }
      spares_.clear();
    }
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wake_, &one, sizeof one);
    for (std::thread& thread : threads_) thread.join();
    std::lock_guard lock(mutex_);
    connections_.clear();
  });
}

void ConnectionService::run() {
  Spare spare;
  {
    std::unique_lock lock(mutex_);
    wait_for_requests(lock, spare);
  }
  while (true) {
    epoll_event event{};
    int ready = epoll_wait(epoll_, &event, 1, static_cast<int>(idle_check_period_.count()));
    if (stopping_) return;
    if (ready < 0 && errno != EINTR) return;
    close_idle_if_due();
    if (ready <= 0 || event.data.u64 == kWakeUp) continue;
    Connection* connection = take(event.data.u64);
    if (connection == nullptr) continue;
    bool keep = serve_connection(*connection);
    std::unique_lock lock(mutex_);
    park_or_close(*connection, keep);
    wait_for_requests(lock, spare);
  }
}

void ConnectionService::wait_for_requests(std::unique_lock<std::mutex>& lock, Spare& spare) {
  // Enough threads already wait in epoll: this one waits as a spare, until they have all
  // been taken (or the service stops). The spare that waited last is woken first.
  while (!stopping_ && waiting_ >= options_.waiting_threads) {
    spare.woken = false;
    spares_.push_back(&spare);
    spare.wake.wait(lock, [&] { return spare.woken || stopping_.load(); });
  }
  ++waiting_;
}

ConnectionService::Connection* ConnectionService::take(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto found = connections_.find(id);
  if (found == connections_.end() || found->second->busy) return nullptr;
  found->second->busy = true;
  // This thread stops waiting; if it was the last, a spare takes its place.
  if (--waiting_ == 0 && !spares_.empty()) {
    Spare* next = spares_.back();
    spares_.pop_back();
    next->woken = true;
    next->wake.notify_one();
  }
  return found->second.get();
}

bool ConnectionService::serve_connection(Connection& connection) {
  while (true) {
    // A request is served once its whole head (and small body) has arrived: a client that
    // sends part of one (slowly, or never the rest) holds no thread; its connection waits in
    // epoll again, and is closed if it stays idle for the idle timeout.
    if (!connection.stream.request_arrived()) {
      if (!connection.stream.receive_arrived()) return false;
      if (!connection.stream.request_arrived()) return true;
    }
    bool last = ++connection.served >= options_.max_requests || stopping_;
    // The next request's deadline runs from its own first bytes.
    connection.request_started_ns = 0;
    bool keep = serve_(connection.stream, last);
    keep = connection.stream.end_request() && keep;
    if (!keep || last) return false;
    // An answer that closes the connection (a refusal that left a body unread): closed now, or
    // once the client has stopped sending what it had begun to.
    if (connection.stream.discarding_input()) return connection.stream.socket_has_input();
    // A request the client pipelined is already here: epoll would not report it again.
    if (!connection.stream.has_buffered_input()) return true;
  }
}

void ConnectionService::park_or_close(Connection& connection, bool keep) {
  if (keep && !stopping_) {
    connection.busy = false;
    connection.idle_since_ns = steady_ns();
    // A connection that discards input runs under the same deadline as a request.
    if (!connection.stream.has_buffered_input() && !connection.stream.discarding_input()) {
      connection.request_started_ns = 0;
    } else if (connection.request_started_ns == 0) {
      connection.request_started_ns = connection.idle_since_ns;
    }
    epoll_event waiting{};
    waiting.events = kWaitForRequest;
    waiting.data.u64 = connection.id;
    if (epoll_ctl(epoll_, EPOLL_CTL_MOD, connection.stream.socket(), &waiting) == 0) return;
  }
  connections_.erase(connection.id);  // closes the socket, which leaves the epoll set
}

void ConnectionService::close_idle_if_due() {
  std::int64_t now = steady_ns();
  std::int64_t due = next_idle_check_ns_.load(std::memory_order_relaxed);
  if (now < due) return;
  std::int64_t period = std::chrono::nanoseconds(idle_check_period_).count();
  if (!next_idle_check_ns_.compare_exchange_strong(due, now + period)) return;
  std::int64_t idle_limit = std::chrono::nanoseconds(options_.idle_timeout).count();
  std::int64_t request_limit = std::chrono::nanoseconds(options_.read_timeout).count();
  std::lock_guard lock(mutex_);
  std::erase_if(connections_, [&](const auto& entry) {
    const Connection& connection = *entry.second;
    if (connection.busy) return false;
    // A client that sends a request a byte at a time, each within the idle timeout.
    if (connection.request_started_ns != 0 && now - connection.request_started_ns > request_limit) {
      return true;
    }
    // A request that arrived after the timeout but before this sweep is served, not dropped
    // unanswered: epoll has reported it (perhaps to this very thread) and a thread takes it.
    return now - connection.idle_since_ns > idle_limit && !connection.stream.socket_has_input();
  });
}

}  // namespace gridexp
