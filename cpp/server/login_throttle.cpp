#include "server/login_throttle.h"

#include <algorithm>

namespace gridexp {

LoginThrottle::LoginThrottle(const Clock& clock, int max_failures, TimeMs window_ms,
                             std::size_t max_clients)
    : clock_(clock),
      max_failures_(max_failures),
      window_ms_(window_ms),
      max_clients_(max_clients) {}

TimeMs LoginThrottle::admit(const std::string& client, Attempt attempt) {
  if (max_failures_ <= 0) return 0;
  std::lock_guard lock(mutex_);
  TimeMs now = clock_.now_ms();
  if (TimeMs wait_ms = refused_for_ms_locked(client, now); wait_ms > 0) return wait_ms;
  if (attempt == Attempt::kWrongPassword) record_failure_locked(client, now);
  return 0;
}

TimeMs LoginThrottle::refused_for_ms_locked(const std::string& client, TimeMs now) {
  auto found = windows_.find(client);
  if (found == windows_.end() || found->second.failures < max_failures_) return 0;
  TimeMs left = found->second.start_ms + window_ms_ - now;
  if (left > 0) return left;
  windows_.erase(found);
  return 0;
}

void LoginThrottle::record_failure_locked(const std::string& client, TimeMs now) {
  auto found = windows_.find(client);
  if (found == windows_.end() || now - found->second.start_ms >= window_ms_) {
    if (found == windows_.end() && windows_.size() >= max_clients_) forget_old_windows(now);
    windows_[client] = Window{now, 1};
    return;
  }
  ++found->second.failures;
}

void LoginThrottle::forget_old_windows(TimeMs now) {
  std::erase_if(windows_,
                [&](const auto& entry) { return now - entry.second.start_ms >= window_ms_; });
  while (windows_.size() >= max_clients_) {
    auto oldest = std::min_element(
        windows_.begin(), windows_.end(),
        [](const auto& a, const auto& b) { return a.second.start_ms < b.second.start_ms; });
    windows_.erase(oldest);
  }
}

}  // namespace gridexp
