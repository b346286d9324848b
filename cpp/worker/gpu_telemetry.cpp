#include "worker/gpu_telemetry.h"

#include <dlfcn.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string_view>

namespace gridexp {
namespace {

// The slice of NVML's C interface used here (nvml.h; stable since CUDA 10's driver).
using NvmlReturn = int;  // nvmlReturn_t; NVML_SUCCESS is 0
using NvmlDevice = void*;
struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr NvmlReturn kNvmlSuccess = 0;

template <typename Function>
bool bind(void* handle, const char* name, Function*& function) {
  function = reinterpret_cast<Function*>(dlsym(handle, name));
  return function != nullptr;
}

}  // namespace

struct GpuTelemetry::Api {
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  NvmlReturn (*device_count)(unsigned int*) = nullptr;
  NvmlReturn (*device_by_index)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*) = nullptr;

  bool bind_all(void* handle) {
    return bind(handle, "nvmlInit_v2", init) && bind(handle, "nvmlShutdown", shutdown) &&
           bind(handle, "nvmlDeviceGetCount_v2", device_count) &&
           bind(handle, "nvmlDeviceGetHandleByIndex_v2", device_by_index) &&
           bind(handle, "nvmlDeviceGetUtilizationRates", utilization) &&
           bind(handle, "nvmlDeviceGetMemoryInfo", memory);
  }
};

std::unique_ptr<GpuTelemetry> GpuTelemetry::open(const std::string& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return nullptr;
  auto api = std::make_unique<Api>();
  unsigned int count = 0;
  if (!api->bind_all(handle) || api->init() != kNvmlSuccess) {
    dlclose(handle);
    return nullptr;
  }
  if (api->device_count(&count) != kNvmlSuccess) {
    api->shutdown();
    dlclose(handle);
    return nullptr;
  }
  return std::unique_ptr<GpuTelemetry>(
      new GpuTelemetry(handle, std::move(api), static_cast<int>(count)));
}

GpuTelemetry::GpuTelemetry(void* handle, std::unique_ptr<Api> api, int device_count)
    : handle_(handle), api_(std::move(api)), device_count_(device_count) {}

GpuTelemetry::~GpuTelemetry() {
  api_->shutdown();
  dlclose(handle_);
}

std::vector<GpuSample> GpuTelemetry::read(const std::vector<int>& indices) const {
  std::vector<int> wanted = indices;
  if (wanted.empty()) {
    for (int index = 0; index < device_count_; ++index) wanted.push_back(index);
  }
  std::vector<GpuSample> samples;
  for (int index : wanted) {
    NvmlDevice device = nullptr;
    NvmlUtilization utilization{};
    NvmlMemory memory{};
    if (index < 0 || index >= device_count_ ||
        api_->device_by_index(static_cast<unsigned int>(index), &device) != kNvmlSuccess ||
        api_->utilization(device, &utilization) != kNvmlSuccess ||
        api_->memory(device, &memory) != kNvmlSuccess) {
      continue;
    }
    samples.push_back({index, static_cast<int>(utilization.gpu), memory.used, memory.total});
  }
  return samples;
}

std::string gpu_telemetry_library() {
  const char* explicit_library = std::getenv("GRIDEXP_NVML_LIBRARY");
  return explicit_library && *explicit_library ? explicit_library : "libnvidia-ml.so.1";
}

GpuReader gpu_reader_for(const char* cuda_visible_devices) {
  static const std::shared_ptr<const GpuTelemetry> telemetry =
      GpuTelemetry::open(gpu_telemetry_library());
  if (!telemetry) return {};
  std::vector<int> indices = visible_gpu_indices(cuda_visible_devices ? cuda_visible_devices : "")
                                 .value_or(std::vector<int>{});
  return [indices] { return telemetry->read(indices); };
}

std::optional<std::vector<int>> visible_gpu_indices(const std::string& cuda_visible_devices) {
  if (cuda_visible_devices.empty()) return std::nullopt;
  std::vector<int> indices;
  std::size_t start = 0;
  while (true) {
    std::size_t comma = cuda_visible_devices.find(',', start);
    std::string_view item = std::string_view(cuda_visible_devices).substr(start, comma - start);
    int index = -1;
    auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), index);
    if (item.empty() || error != std::errc() || end != item.data() + item.size() || index < 0) {
      return std::nullopt;
    }
    indices.push_back(index);
    if (comma == std::string::npos) return indices;
    start = comma + 1;
  }
}

}  // namespace gridexp
