#include "server/gpu_board.h"

#include <algorithm>

#include "server/server_metrics.h"

namespace gridexp {

void GpuBoard::record(const std::string& worker_id, std::vector<GpuSample> gpus, TimeMs now_ms) {
  std::lock_guard lock(mutex_);
  entries_[worker_id] = Entry{now_ms, std::move(gpus)};
  if (entries_.size() <= kMaxWorkers) return;
  auto oldest = std::min_element(
      entries_.begin(), entries_.end(),
      [](const auto& a, const auto& b) { return a.second.received_ms < b.second.received_ms; });
  entries_.erase(oldest);
}

std::vector<GpuSample> GpuBoard::of(const std::string& worker_id, TimeMs now_ms,
                                    TimeMs max_age_ms) const {
  std::lock_guard lock(mutex_);
  auto entry = entries_.find(worker_id);
  if (entry == entries_.end() || now_ms - entry->second.received_ms > max_age_ms) return {};
  return entry->second.gpus;
}

std::map<std::string, std::vector<GpuSample>> GpuBoard::current(TimeMs now_ms,
                                                                TimeMs max_age_ms) const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::vector<GpuSample>> current;
  for (const auto& [worker_id, entry] : entries_) {
    if (now_ms - entry.received_ms <= max_age_ms && !entry.gpus.empty()) {
      current.emplace(worker_id, entry.gpus);
    }
  }
  return current;
}

std::string render_gpu_metrics(const std::map<std::string, std::vector<GpuSample>>& gpus) {
  if (gpus.empty()) return "";
  struct Gauge {
    const char* name;
    const char* help;
    std::string (*value)(const GpuSample&);
  };
  const Gauge gauges[] = {
      {"gridexp_gpu_utilization", "GPU utilisation (0-1) as the worker last read it (NVML).",
       [](const GpuSample& s) { return std::to_string(s.utilization_percent / 100.0); }},
      {"gridexp_gpu_memory_used_bytes", "GPU memory in use as the worker last read it (NVML).",
       [](const GpuSample& s) { return std::to_string(s.memory_used_bytes); }},
      {"gridexp_gpu_memory_total_bytes", "GPU memory in all (NVML).",
       [](const GpuSample& s) { return std::to_string(s.memory_total_bytes); }},
  };
  std::string out;
  for (const Gauge& gauge : gauges) {
    out += std::string("# HELP ") + gauge.name + " " + gauge.help + "\n# TYPE " + gauge.name +
           " gauge\n";
    for (const auto& [worker_id, samples] : gpus) {
      std::string worker = escape_label_value(worker_id);
      for (const GpuSample& sample : samples) {
        out += std::string(gauge.name) + "{worker=\"" + worker + "\",gpu=\"" +
               std::to_string(sample.index) + "\"} " + gauge.value(sample) + "\n";
      }
    }
  }
  return out;
}

}  // namespace gridexp
