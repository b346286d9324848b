#include "server/sessions.h"

#include "common/random.h"
#include "common/sha256.h"

namespace gridexp {
namespace {

constexpr std::size_t kTokenBytes = 32;

}  // namespace

Sessions::Sessions(const Clock& clock, TimeMs lifetime_ms, std::size_t max_sessions)
    : clock_(clock), lifetime_ms_(lifetime_ms), max_sessions_(max_sessions) {}

std::string Sessions::create() {
  std::string token = random_hex(kTokenBytes);
  std::string digest = sha256_hex(token);
  std::lock_guard lock(mutex_);
  TimeMs now = clock_.now_ms();
  forget_expired(now);
  while (expiry_by_digest_.size() >= max_sessions_ && !digest_by_expiry_.empty()) {
    expiry_by_digest_.erase(digest_by_expiry_.begin()->second);
    digest_by_expiry_.erase(digest_by_expiry_.begin());
  }
  TimeMs expires = now + lifetime_ms_;
  expiry_by_digest_[digest] = expires;
  digest_by_expiry_.emplace(expires, std::move(digest));
  return token;
}

bool Sessions::is_valid(const std::string& token) {
  if (token.size() != 2 * kTokenBytes) return false;
  std::string digest = sha256_hex(token);
  std::lock_guard lock(mutex_);
  auto found = expiry_by_digest_.find(digest);
  return found != expiry_by_digest_.end() && clock_.now_ms() < found->second;
}

void Sessions::revoke(const std::string& token) {
  std::string digest = sha256_hex(token);
  std::lock_guard lock(mutex_);
  auto found = expiry_by_digest_.find(digest);
  if (found == expiry_by_digest_.end()) return;
  auto [first, last] = digest_by_expiry_.equal_range(found->second);
  for (auto entry = first; entry != last; ++entry) {
    if (entry->second == digest) {
      digest_by_expiry_.erase(entry);
      break;
    }
  }
  expiry_by_digest_.erase(found);
}

void Sessions::forget_expired(TimeMs now) {
  while (!digest_by_expiry_.empty() && digest_by_expiry_.begin()->first <= now) {
    expiry_by_digest_.erase(digest_by_expiry_.begin()->second);
    digest_by_expiry_.erase(digest_by_expiry_.begin());
  }
}

}  // namespace gridexp
