// GpuBoard: the latest GPU telemetry each worker sent with a trial heartbeat, for
// /api/v1/workers and /metrics. Kept in memory only: it is live data, and after a restart the
// next heartbeats fill it again. A worker's samples count as current for `max_age_ms` after
// they arrived (a worker that stops sending them drops off). Thread-safe.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/gpu_sample.h"

namespace gridexp {

class GpuBoard {
 public:
  // The board forgets the oldest worker beyond this many (a bound on memory).
  static constexpr std::size_t kMaxWorkers = 4096;

  void record(const std::string& worker_id, std::vector<GpuSample> gpus, TimeMs now_ms);
  // The worker's current samples; empty when none arrived within `max_age_ms`.
  std::vector<GpuSample> of(const std::string& worker_id, TimeMs now_ms, TimeMs max_age_ms) const;
  // Every worker's current samples, by worker id.
  std::map<std::string, std::vector<GpuSample>> current(TimeMs now_ms, TimeMs max_age_ms) const;

 private:
  struct Entry {
    TimeMs received_ms = 0;
    std::vector<GpuSample> gpus;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

// The gauges gridexp_gpu_utilization (0-1) and gridexp_gpu_memory_used_bytes (and
// gridexp_gpu_memory_total_bytes), labels worker and gpu, in the Prometheus text format; ""
// when no worker has current samples.
std::string render_gpu_metrics(const std::map<std::string, std::vector<GpuSample>>& gpus);

}  // namespace gridexp
