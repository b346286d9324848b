// EventWriter: the queue and thread that write events to the supervisor's pipe.
#include "executor/event_writer.h"

#include <cstdio>
#include <utility>

#include "common/fd_io.h"
#include "executor/signal_free_thread.h"

namespace gridexp {
namespace {

bool is_metrics(const ExecutorEvent& event) { return std::holds_alternative<MetricsEvent>(event); }

}  // namespace

EventWriter::EventWriter(int fd)
    : fd_(fd), thread_(start_signal_free_thread([this] { write_until_closed(); })) {}

EventWriter::~EventWriter() { close(); }

void EventWriter::post(ExecutorEvent event) {
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
    ExecutorEvent event = std::move(queue_.front());
    queue_.pop_front();
    if (is_metrics(event)) --queued_metrics_;
    lock.unlock();
    if (!pipe_broken) {
      if (Status written = write_all(fd_, encode_event(event)); !written) {
        std::fprintf(stderr, "gridexp-executor: cannot write events: %s\n",
                     written.message().c_str());
        pipe_broken = true;
      }
    }
    lock.lock();
  }
}

}  // namespace gridexp
