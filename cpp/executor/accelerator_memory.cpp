// See accelerator_memory.h.
#include "executor/accelerator_memory.h"

#include <string_view>

namespace gridexp {

bool shared_gpu_from_environment(const char* value) {
  return value != nullptr && std::string_view(value) == "1";
}

ReleaseReport release_after_trial(AcceleratorMemory& memory,
                                  std::optional<std::int64_t> allocated_before, bool shared) {
  ReleaseReport report;
  std::optional<std::int64_t> allocated = memory.allocated_bytes();
  if (!allocated) return report;
  // An accelerator first used during the trial held nothing before it.
  const std::int64_t baseline = allocated_before.value_or(0);
  if (*allocated > baseline) {
    memory.collect_garbage();
    report.collected_garbage = true;
    allocated = memory.allocated_bytes();
  }
  if (shared || allocated.value_or(0) > baseline) {
    memory.empty_cache();
    report.emptied_cache = true;
  }
  return report;
}

}  // namespace gridexp
