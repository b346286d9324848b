#include "common/gpu_sample.h"

#include <optional>
#include <string>

namespace gridexp {
namespace {

constexpr std::int64_t kMaxGpuIndex = 1023;

// The unsigned integer at `object[key]` if it lies in [0, max].
std::optional<std::uint64_t> bounded(const nlohmann::json& object, const char* key,
                                     std::uint64_t max) {
  auto field = object.find(key);
  if (field == object.end() || !field->is_number_integer()) return std::nullopt;
  if (field->is_number_unsigned()) {
    std::uint64_t value = field->get<std::uint64_t>();
    return value <= max ? std::optional(value) : std::nullopt;
  }
  std::int64_t value = field->get<std::int64_t>();
  if (value < 0 || static_cast<std::uint64_t>(value) > max) return std::nullopt;
  return static_cast<std::uint64_t>(value);
}

std::optional<GpuSample> parse_sample(const nlohmann::json& item) {
  if (!item.is_object()) return std::nullopt;
  auto index = bounded(item, "index", kMaxGpuIndex);
  auto utilization = bounded(item, "utilization_percent", 100);
  auto used = bounded(item, "memory_used_bytes", UINT64_MAX);
  auto total = bounded(item, "memory_total_bytes", UINT64_MAX);
  if (!index || !utilization || !used || !total || *used > *total) return std::nullopt;
  return GpuSample{static_cast<int>(*index), static_cast<int>(*utilization), *used, *total};
}

}  // namespace

nlohmann::json gpu_samples_json(const std::vector<GpuSample>& samples) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuSample& sample : samples) {
    gpus.push_back({{"index", sample.index},
                    {"utilization_percent", sample.utilization_percent},
                    {"memory_used_bytes", sample.memory_used_bytes},
                    {"memory_total_bytes", sample.memory_total_bytes}});
  }
  return gpus;
}

Result<std::vector<GpuSample>> parse_gpu_samples(const nlohmann::json& value) {
  if (!value.is_array() || value.size() > kMaxGpuSamples) {
    return Status::invalid_argument("\"gpus\" must be an array of at most " +
                                    std::to_string(kMaxGpuSamples) + " GPUs");
  }
  std::vector<GpuSample> samples;
  for (const nlohmann::json& item : value) {
    std::optional<GpuSample> sample = parse_sample(item);
    if (!sample) {
      return Status::invalid_argument(
          "each of \"gpus\" needs an integer \"index\" (0-1023), \"utilization_percent\" "
          "(0-100), \"memory_used_bytes\" and \"memory_total_bytes\" (used <= total)");
    }
    samples.push_back(*sample);
  }
  return samples;
}

}  // namespace gridexp
