// EventWriter: sends the executor's events to the supervisor, one line each (encode_event), from a
// thread of its own, so that nobody who posts an event (gridexp.report in a training loop above
// all) ever waits on the pipe.
//
// post() is safe from any thread and never blocks on I/O. While more than kMaxQueuedMetrics
// metrics events wait, further ones are dropped (said once on stderr), so a supervisor that
// stops reading cannot make the executor grow without bound; other events are never dropped.
// After a failed write (the supervisor is gone) events are discarded.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "common/executor_protocol.h"

namespace gridexp {

// Where events go; the executor's is an EventWriter, tests record them.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void post(ExecutorEvent event) = 0;
};

class EventWriter final : public EventSink {
 public:
  static constexpr std::size_t kMaxQueuedMetrics = 10'000;

  explicit EventWriter(int fd);  // does not take ownership of fd
  ~EventWriter() override;       // close()
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void post(ExecutorEvent event) override;
  // Writes every event posted so far and stops the thread; later posts are discarded.
  void close();

 private:
  void write_until_closed();

  const int fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<ExecutorEvent> queue_;
  std::size_t queued_metrics_ = 0;
  bool dropped_metrics_ = false;
  bool closing_ = false;
  std::thread thread_;
};

}  // namespace gridexp
