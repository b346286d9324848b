// Clock: the one source of "now" for leases, heartbeats and timestamps.
//
// Times are milliseconds since the Unix epoch (wall clock), because lease expiries are
// stored on disk and must mean the same after a server restart. Tests inject a FakeClock to
// expire leases without sleeping. SystemClock and FakeClock are safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace gridexp {

using TimeMs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimeMs start_ms = 1'700'000'000'000) : now_(start_ms) {}
  TimeMs now_ms() const override { return now_.load(); }
  void advance_ms(TimeMs delta) { now_ += delta; }
  void set_ms(TimeMs value) { now_ = value; }

 private:
  std::atomic<TimeMs> now_;
};

}  // namespace gridexp
