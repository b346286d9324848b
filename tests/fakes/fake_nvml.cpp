// A stand-in for NVIDIA's libnvidia-ml.so.1 with the functions gridexp-worker uses
// (cpp/worker/gpu_telemetry.cpp), so tests run the telemetry path on machines without a GPU.
// The GPUs come from $FAKE_NVML_GPUS: "UTIL:USED:TOTAL" per GPU, comma-separated
// ("97:1073741824:85899345920,3:0:85899345920"); $FAKE_NVML_FAIL_INIT=1 makes init fail.
// Build: c++ -shared -fPIC -o libfake-nvml.so tests/fakes/fake_nvml.cpp
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

enum { kSuccess = 0, kUninitialized = 1, kInvalidArgument = 2, kMaxGpus = 16 };

struct Gpu {
  unsigned int utilization;
  unsigned long long used;
  unsigned long long total;
};
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

Gpu gpus[kMaxGpus];
unsigned int gpu_count;
int initialized;

}  // namespace

extern "C" {

int nvmlInit_v2() {
  const char* fail = getenv("FAKE_NVML_FAIL_INIT");
  if (fail && strcmp(fail, "1") == 0) return kUninitialized;
  const char* text = getenv("FAKE_NVML_GPUS");
  gpu_count = 0;
  while (text && *text && gpu_count < kMaxGpus) {
    Gpu* gpu = &gpus[gpu_count];
    int consumed = 0;
    if (sscanf(text, "%u:%llu:%llu%n", &gpu->utilization, &gpu->used, &gpu->total, &consumed) != 3)
      break;
    ++gpu_count;
    text += consumed;
    if (*text == ',') ++text;
  }
  initialized = 1;
  return kSuccess;
}

int nvmlShutdown() {
  initialized = 0;
  return kSuccess;
}

int nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!initialized) return kUninitialized;
  *count = gpu_count;
  return kSuccess;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (!initialized) return kUninitialized;
  if (index >= gpu_count) return kInvalidArgument;
  *device = &gpus[index];
  return kSuccess;
}

int nvmlDeviceGetUtilizationRates(void* device, Utilization* utilization) {
  const Gpu* gpu = static_cast<const Gpu*>(device);
  utilization->gpu = gpu->utilization;
  utilization->memory = 0;
  return kSuccess;
}

int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  const Gpu* gpu = static_cast<const Gpu*>(device);
  memory->total = gpu->total;
  memory->used = gpu->used;
  memory->free = gpu->total - gpu->used;
  return kSuccess;
}

}  // extern "C"
