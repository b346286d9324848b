// GpuTelemetry: each GPU's utilisation and memory, read through NVML, the management library
// the NVIDIA driver installs (libnvidia-ml.so.1). It is loaded with dlopen at run time: no
// build or package dependency, and a machine without the driver simply has no telemetry.
// Tests load a fake library in its place (GRIDEXP_NVML_LIBRARY, see gpu_telemetry_library()).
//
// GPUs are named by NVML's index, the PCI bus order that /proc/driver/nvidia/gpus and
// CUDA_VISIBLE_DEVICES (with CUDA_DEVICE_ORDER=PCI_BUS_ID) use too.
// read() is safe from any thread: NVML is thread-safe and the object is immutable once open.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/gpu_sample.h"

namespace gridexp {

class GpuTelemetry {
 public:
  // nullptr when the library is missing, lacks a function this needs, or its init fails.
  static std::unique_ptr<GpuTelemetry> open(const std::string& library);
  ~GpuTelemetry();
  GpuTelemetry(const GpuTelemetry&) = delete;
  GpuTelemetry& operator=(const GpuTelemetry&) = delete;

  int device_count() const { return device_count_; }
  // The GPUs in `indices` (every GPU when empty); a GPU NVML cannot read is left out.
  std::vector<GpuSample> read(const std::vector<int>& indices = {}) const;

 private:
  struct Api;
  GpuTelemetry(void* handle, std::unique_ptr<Api> api, int device_count);
  void* handle_;
  std::unique_ptr<Api> api_;
  int device_count_;
};

// The library to load: $GRIDEXP_NVML_LIBRARY when set (tests), else "libnvidia-ml.so.1".
std::string gpu_telemetry_library();

// Reads the GPUs a process with this CUDA_VISIBLE_DEVICES uses (every GPU when it is unset or
// not a list of indices), on each call; safe from any thread.
using GpuReader = std::function<std::vector<GpuSample>()>;

// A reader over the machine's telemetry, opened once per process (gpu_telemetry_library());
// an empty function where NVML is not there.
GpuReader gpu_reader_for(const char* cuda_visible_devices);

// The GPU indices a CUDA_VISIBLE_DEVICES value names, when it is a plain list of indices
// ("0,2"); nullopt for anything else (UUIDs, MIG names, empty), which telemetry then reads whole.
std::optional<std::vector<int>> visible_gpu_indices(const std::string& cuda_visible_devices);

}  // namespace gridexp
