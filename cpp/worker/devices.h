// The accelerators of this machine, for the worker's registration (the dashboard's workers
// panel): NVIDIA GPUs as the kernel driver lists them under /proc/driver/nvidia/gpus, with
// no CUDA library or nvidia-smi needed. A machine without them has none (the panel says cpu).
// Pure function of the files under `proc_root`; safe from any thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace gridexp {

// "GPU 0: NVIDIA H100 80GB HBM3", in the order of the driver's device minor numbers.
std::vector<std::string> detect_devices(const std::filesystem::path& proc_root = "/proc");

}  // namespace gridexp
