// GpuSample: one GPU's utilisation and memory at one moment, as a worker reads it (NVML) and
// sends it with a trial heartbeat ("gpus", docs/protocol.md) and as the server shows it
// (/api/v1/workers, /metrics). Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

struct GpuSample {
  int index = 0;                // NVML's index: PCI bus order
  int utilization_percent = 0;  // 0-100, over NVML's last sample period
  std::uint64_t memory_used_bytes = 0;
  std::uint64_t memory_total_bytes = 0;

  bool operator==(const GpuSample&) const = default;
};

// At most this many GPUs per heartbeat: more is refused as malformed.
inline constexpr std::size_t kMaxGpuSamples = 64;

// [{"index": 0, "utilization_percent": 97, "memory_used_bytes": .., "memory_total_bytes": ..}]
nlohmann::json gpu_samples_json(const std::vector<GpuSample>& samples);

// The inverse, for what arrives from the network: kInvalidArgument naming the field when the
// value is not such an array (index 0-1023, utilization 0-100, used <= total, at most
// kMaxGpuSamples entries).
Result<std::vector<GpuSample>> parse_gpu_samples(const nlohmann::json& value);

}  // namespace gridexp
