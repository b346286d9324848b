// GpuSlots: which GPU each executor slot gets.
#include "worker/gpu_slots.h"

#include <algorithm>
#include <charconv>

namespace gridexp {
namespace {

std::string trimmed(const std::string& text) {
  std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = std::min(text.find(',', start), text.size());
    parts.push_back(trimmed(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return parts;
}

// The driver's number of "GPU 3: NVIDIA H200", or -1.
int minor_of(const std::string& description) {
  int minor = -1;
  const char* first = description.data() + std::min<std::size_t>(4, description.size());
  std::from_chars(first, description.data() + description.size(), minor);
  return minor;
}

std::optional<VisibleGpu> named_gpu(const std::vector<std::string>& detected,
                                    const std::string& entry) {
  int number = -1;
  auto [end, error] = std::from_chars(entry.data(), entry.data() + entry.size(), number);
  if (error == std::errc() && end == entry.data() + entry.size()) {
    for (const std::string& description : detected) {
      if (minor_of(description) == number) return VisibleGpu{entry, description};
    }
    return std::nullopt;
  }
  if (entry.rfind("GPU-", 0) == 0 || entry.rfind("MIG-", 0) == 0) return VisibleGpu{entry, entry};
  return std::nullopt;
}

std::string describe_visible(const std::vector<VisibleGpu>& visible) {
  if (visible.empty()) {
    return "this machine has no GPU the worker can see (none under /proc/driver/nvidia/gpus, "
           "or CUDA_VISIBLE_DEVICES hides them)";
  }
  std::string text = "the GPUs here are";
  for (std::size_t index = 0; index < visible.size(); ++index) {
    text +=
        (index == 0 ? " " : ", ") + std::to_string(index) + " (" + visible[index].description + ")";
  }
  return text;
}

SlotPlan cpu_slot(std::optional<std::string> cuda_visible_devices) {
  return SlotPlan{0, std::move(cuda_visible_devices), {}};
}

}  // namespace

std::vector<VisibleGpu> visible_gpus(const std::vector<std::string>& detected,
                                     const std::optional<std::string>& cuda_visible_devices) {
  std::vector<VisibleGpu> visible;
  if (!cuda_visible_devices) {
    for (const std::string& description : detected) {
      int minor = minor_of(description);
      if (minor >= 0) visible.push_back({std::to_string(minor), description});
    }
    return visible;
  }
  if (detected.empty()) return visible;
  for (const std::string& entry : split_commas(*cuda_visible_devices)) {
    std::optional<VisibleGpu> gpu = named_gpu(detected, entry);
    if (!gpu) break;
    visible.push_back(std::move(*gpu));
  }
  return visible;
}

Result<std::vector<SlotPlan>> plan_slots(const GpuChoice& choice, int trials_per_gpu,
                                         const std::vector<VisibleGpu>& visible) {
  if (choice.kind == GpuChoice::Kind::kNone) return std::vector<SlotPlan>{cpu_slot("")};
  std::vector<int> chosen = choice.indices;
  if (choice.kind == GpuChoice::Kind::kAll) {
    if (visible.empty()) return std::vector<SlotPlan>{cpu_slot(std::nullopt)};
    for (std::size_t index = 0; index < visible.size(); ++index) {
      chosen.push_back(static_cast<int>(index));
    }
  }
  for (int index : chosen) {
    if (index < 0 || static_cast<std::size_t>(index) >= visible.size()) {
      return Status::invalid_argument("--gpus " + std::to_string(index) + ": no such GPU; " +
                                      describe_visible(visible));
    }
  }
  std::vector<SlotPlan> slots;
  for (int index : chosen) {
    const VisibleGpu& gpu = visible[static_cast<std::size_t>(index)];
    for (int copy = 0; copy < trials_per_gpu; ++copy) {
      slots.push_back({static_cast<int>(slots.size()),
                       gpu.physical,
                       {gpu.description},
                       trials_per_gpu > 1,
                       copy});
    }
  }
  return slots;
}

std::string slot_label(const SlotPlan& slot) {
  return "slot " + std::to_string(slot.number) + " (" +
         (slot.devices.empty() ? std::string("CPU") : slot.devices.front()) + ")";
}

}  // namespace gridexp
