// LoginThrottle: slows down guessing the password. A client address that gave a wrong
// password `max_failures` times within `window_ms` is refused — right password or not, so
// the refusal tells a guesser nothing — until that window ends.
//
// Counted: a wrong password in an Authorization header or at the dashboard login. Not
// counted: a request with no credentials, or a stale session cookie (a server restart
// invalidates every one). At most `max_clients` addresses are tracked; beyond that the
// oldest windows are forgotten first. Safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"

namespace gridexp {

class LoginThrottle {
 public:
  LoginThrottle(const Clock& clock, int max_failures = 20, TimeMs window_ms = 60'000,
                std::size_t max_clients = 10'000);

  // 0 turns the throttle off (behind a reverse proxy every client has the proxy's address).
  // Call before serving.
  void set_max_failures(int max_failures) { max_failures_ = max_failures; }

  enum class Attempt { kNoPassword, kRightPassword, kWrongPassword };

  // One request's verdict, in one step: 0 when it may be answered (a wrong password is
  // counted at once, in the same step), else the milliseconds until `client` may try again;
  // a refused request must then be told nothing about its password. Being one step, parallel
  // guesses from one address get at most `max_failures` answers per window.
  TimeMs admit(const std::string& client, Attempt attempt);

 private:
  TimeMs refused_for_ms_locked(const std::string& client, TimeMs now);
  void record_failure_locked(const std::string& client, TimeMs now);
  struct Window {
    TimeMs start_ms = 0;
    int failures = 0;
  };
  void forget_old_windows(TimeMs now);

  const Clock& clock_;
  int max_failures_;
  const TimeMs window_ms_;
  const std::size_t max_clients_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
};

}  // namespace gridexp
