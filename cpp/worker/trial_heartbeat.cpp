#include "worker/trial_heartbeat.h"

namespace gridexp {
namespace {

constexpr std::chrono::milliseconds kFlushInterval{1000};
constexpr std::size_t kMaxBufferedLog = 4 << 20;

}  // namespace

TrialHeartbeat::TrialHeartbeat(const std::string& base_url, const std::string& password,
                               std::string trial_id, std::string lease_token,
                               std::chrono::milliseconds heartbeat_interval)
    : connection_(base_url, password),
      trial_id_(std::move(trial_id)),
      lease_token_(std::move(lease_token)),
      heartbeat_interval_(heartbeat_interval),
      thread_([this] { run(); }) {
  // A slow answer must not hold the next heartbeat back past the lease.
  connection_.set_read_timeout(
      std::max(std::chrono::seconds(2),
               std::chrono::duration_cast<std::chrono::seconds>(heartbeat_interval_)));
}

TrialHeartbeat::~TrialHeartbeat() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TrialHeartbeat::push_metrics(nlohmann::json point) {
  std::lock_guard lock(mutex_);
  metrics_.push_back(std::move(point));
}

void TrialHeartbeat::push_log_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  // A flood of output while the server is away must not grow without bound.
  if (log_.size() < kMaxBufferedLog) log_ += line + "\n";
}

void TrialHeartbeat::send_buffered() {
  std::vector<nlohmann::json> metrics;
  std::string log;
  {
    std::lock_guard lock(mutex_);
    metrics.swap(metrics_);
    log.swap(log_);
  }
  std::string prefix = "/api/v1/trials/" + trial_id_;
  if (!metrics.empty()) {
    Result<nlohmann::json> sent = connection_.post_json(
        prefix + "/metrics", {{"lease_token", lease_token_}, {"points", metrics}});
    if (!sent && sent.status().code() == Code::kConflict) lease_lost_ = true;
    if (!sent && sent.status().code() == Code::kUnavailable) {
      std::lock_guard lock(mutex_);
      metrics.insert(metrics.end(), metrics_.begin(), metrics_.end());
      metrics_.swap(metrics);
    }
  }
  if (!log.empty()) {
    Result<nlohmann::json> sent =
        connection_.post_text(prefix + "/log", log, {{"X-Gridexp-Lease-Token", lease_token_}});
    if (!sent && sent.status().code() == Code::kConflict) lease_lost_ = true;
    if (!sent && sent.status().code() == Code::kUnavailable) {
      std::lock_guard lock(mutex_);
      log_.insert(0, log);
    }
  }
}

void TrialHeartbeat::run() {
  auto next_heartbeat = std::chrono::steady_clock::now() + heartbeat_interval_;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, kFlushInterval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (std::chrono::steady_clock::now() >= next_heartbeat) {
      Result<nlohmann::json> reply = connection_.post_json(
          "/api/v1/trials/" + trial_id_ + "/heartbeat", {{"lease_token", lease_token_}});
      if (reply) {
        if (reply->value("stop", false)) stop_requested_ = true;
        next_heartbeat = std::chrono::steady_clock::now() + heartbeat_interval_;
      } else if (reply.status().code() == Code::kConflict ||
                 reply.status().code() == Code::kNotFound) {
        lease_lost_ = true;
      }
      // kUnavailable: try again at the next tick, well inside the lease.
    }
    send_buffered();
    lock.lock();
  }
}

void TrialHeartbeat::flush_and_stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  send_buffered();
}

}  // namespace gridexp
