// EventWriter: the queue and thread that write events to the supervisor's pipe.
#include "executor/event_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "executor/signal_free_thread.h"

namespace gridexp {
namespace {

bool is_metrics(const nlohmann::json& event) { return event.value("type", "") == "metrics"; }

// Writes all of `text`; false on an error other than EINTR.
bool write_fully(int fd, const std::string& text) {
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t count = ::write(fd, text.data() + written, text.size() - written);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return false;
    written += static_cast<std::size_t>(count);
  }
  return true;
}

}  // namespace

EventWriter::EventWriter(int fd)
    : fd_(fd), thread_(start_signal_free_thread([this] { write_until_closed(); })) {}

EventWriter::~EventWriter() { close(); }

void EventWriter::post(nlohmann::json event) {
  bool metrics = is_metrics(event);
  {
    std::lock_guard lock(mutex_);
    if (closing_) return;
    if (metrics) {
      if (queued_metrics_ >= kMaxQueuedMetrics) {
        if (!dropped_metrics_) {
          std::fprintf(stderr,
                       "gridexp-executor: the supervisor is not reading events; dropping metrics "
                       "beyond %zu waiting\n",
                       kMaxQueuedMetrics);
          dropped_metrics_ = true;
        }
        return;
      }
      ++queued_metrics_;
    }
    queue_.push_back(std::move(event));
  }
  wake_.notify_one();
}

void EventWriter::close() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void EventWriter::write_until_closed() {
  bool pipe_broken = false;
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closing, and everything is written
    nlohmann::json event = std::move(queue_.front());
    queue_.pop_front();
    if (is_metrics(event)) --queued_metrics_;
    lock.unlock();
    if (!pipe_broken) {
      std::string line =
          event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
      if (!write_fully(fd_, line)) {
        std::fprintf(stderr, "gridexp-executor: cannot write events: %s\n", std::strerror(errno));
        pipe_broken = true;
      }
    }
    lock.lock();
  }
}

}  // namespace gridexp
