// GpuPacking: how many trials fit on a GPU (gpu_packing.h states the rule).
#include "worker/gpu_packing.h"

#include <algorithm>
#include <cmath>

namespace gridexp {

int trials_that_fit(const GpuMemoryView& gpu, const PackingRule& rule) {
  if (!gpu.total_bytes || !gpu.largest_peak_bytes || *gpu.total_bytes <= 0) return 1;
  const double usable = static_cast<double>(*gpu.total_bytes) * rule.usable_fraction;
  const double per_trial = static_cast<double>(std::max<std::int64_t>(0, *gpu.largest_peak_bytes)) +
                           static_cast<double>(rule.per_trial_allowance);
  const double fit = std::floor(usable / std::max(per_trial, 1.0));
  return static_cast<int>(std::clamp(fit, 1.0, static_cast<double>(rule.max_trials)));
}

int packing_ceiling(const GpuMemoryView& gpu, int peaks_reported, int out_of_memory_ceiling,
                    const PackingRule& rule) {
  int ceiling = std::min({trials_that_fit(gpu, rule), peaks_reported + 1, out_of_memory_ceiling});
  return std::max(1, ceiling);
}

bool may_join(int running, int ceiling, const GpuMemoryView& gpu, const PackingRule& rule) {
  if (running == 0) return true;
  if (running >= ceiling) return false;
  if (!gpu.total_bytes || !gpu.used_bytes) return false;
  return static_cast<double>(*gpu.used_bytes) <=
         static_cast<double>(*gpu.total_bytes) * rule.pressure_fraction;
}

int ceiling_after_out_of_memory(int ceiling, int most_at_once) {
  return std::max(1, std::min(ceiling, most_at_once - 1));
}

}  // namespace gridexp
