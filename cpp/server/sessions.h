// Sessions: the dashboard's logins, kept in memory (a server restart logs everyone out).
//
// create() hands out a fresh random token (256 bits) valid for `lifetime`; is_valid() is true
// for a token that was created, has not expired and was not revoked. Tokens are kept by
// their SHA-256, so a lookup's timing says nothing about the tokens held. At most
// `max_sessions` live at once: the oldest goes first. Safe to call from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"

namespace gridexp {

class Sessions {
 public:
  Sessions(const Clock& clock, TimeMs lifetime_ms, std::size_t max_sessions = 10'000);

  std::string create();
  bool is_valid(const std::string& token);
  void revoke(const std::string& token);
  TimeMs lifetime_ms() const { return lifetime_ms_; }

 private:
  void forget_expired(TimeMs now);

  const Clock& clock_;
  const TimeMs lifetime_ms_;
  const std::size_t max_sessions_;
  std::mutex mutex_;
  std::unordered_map<std::string, TimeMs> expiry_by_digest_;
  std::multimap<TimeMs, std::string> digest_by_expiry_;
};

}  // namespace gridexp
