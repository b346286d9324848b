// ServerMetrics: the counters and the request-latency histogram behind GET /metrics, and their
// rendering in the Prometheus text format (version 0.0.4).
//
// Requests are labelled by route_label(): the route's pattern, never the raw path, so that
// trial ids and experiment names cannot grow the number of series. Counting is lock-free;
// observing a request duration takes a short mutex. Safe to call from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "server/store.h"

namespace gridexp {

// "/api/v1/trials/3f2a9c1e8b7d6a50/heartbeat" -> "/api/v1/trials/{id}/heartbeat"; a path that
// is no route of the server -> "other".
std::string route_label(std::string_view path);

// Prometheus label value escaping: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

class ServerMetrics {
 public:
  static constexpr std::array<double, 14> kBucketBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  std::atomic<std::uint64_t> claims{0};          // claims that handed out a trial
  std::atomic<std::uint64_t> completions{0};     // accepted completions
  std::atomic<std::uint64_t> failures{0};        // accepted failure reports
  std::atomic<std::uint64_t> executors_lost{0};  // trials whose executor died by a signal
  std::atomic<std::uint64_t> model_bytes_uploaded{0};
  std::atomic<std::uint64_t> trials_preempted{0};      // trials handed back by a stopped worker
  std::atomic<std::uint64_t> checkpoint_uploads{0};    // checkpoints stored
  std::atomic<std::uint64_t> checkpoint_bytes{0};      // their bytes
  std::atomic<std::uint64_t> checkpoint_downloads{0};  // checkpoints handed to a worker

  void observe_request(std::string_view method, std::string_view route, double seconds);

  // The whole exposition: these counters, the histogram, and the gauges given.
  std::string render(const std::vector<ExperimentSummary>& experiments, std::int64_t workers_online,
                     const StoreStats& store) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBucketBounds.size()> buckets{};  // not cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };
  std::string render_histograms() const;

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Histogram> histograms_;  // (method, route)
};

}  // namespace gridexp
