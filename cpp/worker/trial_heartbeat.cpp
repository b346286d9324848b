#include "worker/trial_heartbeat.h"

#include "common/url.h"

namespace gridexp {
namespace {

constexpr std::chrono::milliseconds kFlushInterval{1000};
constexpr std::size_t kLogChunkBytes = 1 << 20;
// How long one round may spend on a log backlog before the next heartbeat is due again.
constexpr std::chrono::milliseconds kLogRoundBudget{2000};

}  // namespace

TrialHeartbeat::TrialHeartbeat(const std::string& base_url, const std::string& password,
                               std::string trial_id, std::string lease_token,
                               std::chrono::milliseconds heartbeat_interval,
                               const std::filesystem::path& spool_directory,
                               std::uint64_t log_limit_bytes, GpuReader gpu_reader)
    : connection_(base_url, password),
      trial_id_(std::move(trial_id)),
      lease_token_(std::move(lease_token)),
      heartbeat_interval_(heartbeat_interval),
      gpu_reader_(std::move(gpu_reader)),
      log_(spool_directory, log_limit_bytes),
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

void TrialHeartbeat::push_log_line(const std::string& line) { log_.append(line); }

void TrialHeartbeat::send_metrics() {
  std::vector<nlohmann::json> metrics;
  {
    std::lock_guard lock(mutex_);
    metrics.swap(metrics_);
  }
  if (metrics.empty()) return;
  Result<nlohmann::json> sent =
      connection_.post_json("/api/v1/trials/" + encode_path_segment(trial_id_) + "/metrics",
                            {{"lease_token", lease_token_}, {"points", metrics}});
  if (!sent && sent.status().code() == Code::kConflict) lease_lost_ = true;
  if (!sent && sent.status().code() == Code::kUnavailable) {
    std::lock_guard lock(mutex_);
    metrics.insert(metrics.end(), metrics_.begin(), metrics_.end());
    metrics_.swap(metrics);
  }
}

TrialHeartbeat::LogRound TrialHeartbeat::send_log(std::chrono::steady_clock::time_point deadline) {
  const std::string path = "/api/v1/trials/" + encode_path_segment(trial_id_) + "/log";
  while (true) {
    std::string chunk = log_.next_chunk(kLogChunkBytes);
    if (chunk.empty()) return LogRound::kAllSent;
    Result<nlohmann::json> sent =
        connection_.post_text(path, chunk, {{"X-Gridexp-Lease-Token", lease_token_}});
    if (!sent) {
      if (sent.status().code() == Code::kConflict) lease_lost_ = true;
      // Unavailable: the chunk stays in the spool for the next round. Anything else (a lost
      // lease, a refused chunk) will not change by sending it again.
      if (sent.status().code() != Code::kUnavailable) log_.consume(chunk.size());
      return LogRound::kFailed;
    }
    log_.consume(chunk.size());
    if (std::chrono::steady_clock::now() >= deadline) {
      return log_.has_unsent() ? LogRound::kMoreToSend : LogRound::kAllSent;
    }
  }
}

nlohmann::json TrialHeartbeat::heartbeat_body() const {
  nlohmann::json body = {{"lease_token", lease_token_}};
  if (!gpu_reader_) return body;
  std::vector<GpuSample> gpus = gpu_reader_();
  if (!gpus.empty()) body["gpus"] = gpu_samples_json(gpus);
  return body;
}

void TrialHeartbeat::run() {
  auto next_heartbeat = std::chrono::steady_clock::now() + heartbeat_interval_;
  bool backlog = false;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!backlog) wake_.wait_for(lock, kFlushInterval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    if (std::chrono::steady_clock::now() >= next_heartbeat) {
      Result<nlohmann::json> reply = connection_.post_json(
          "/api/v1/trials/" + encode_path_segment(trial_id_) + "/heartbeat", heartbeat_body());
      if (reply) {
        if (reply->value("stop", false)) stop_requested_ = true;
        next_heartbeat = std::chrono::steady_clock::now() + heartbeat_interval_;
      } else if (reply.status().code() == Code::kConflict ||
                 reply.status().code() == Code::kNotFound) {
        lease_lost_ = true;
      }
      // kUnavailable: try again at the next tick, well inside the lease.
    }
    send_metrics();
    // A backlog being sent skips the wait; after a failure the next try is a tick later.
    backlog = send_log(std::chrono::steady_clock::now() + kLogRoundBudget) == LogRound::kMoreToSend;
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
  send_metrics();
  log_.close();
  send_log(std::chrono::steady_clock::time_point::max());
}

}  // namespace gridexp
