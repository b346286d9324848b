// GpuSlots: the executor slots one gridexp-worker runs, planned from --gpus, --trials-per-gpu,
// the GPUs the driver lists (devices.h) and a CUDA_VISIBLE_DEVICES the worker inherited.
//
// The visible GPUs are those the driver lists, or, when CUDA_VISIBLE_DEVICES is set, the ones
// it names, in its order (as CUDA numbers them: --gpus 0 is its first entry). Each chosen GPU
// gets --trials-per-gpu slots, each slot one executor whose CUDA_VISIBLE_DEVICES is that
// GPU's entry alone, so slots on one GPU share it. Without a GPU, or with --gpus none, there is
// one slot on the CPU. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/options.h"

namespace gridexp {

struct VisibleGpu {
  std::string physical;     // its CUDA_VISIBLE_DEVICES entry: "2", or a "GPU-<uuid>"
  std::string description;  // "GPU 2: NVIDIA H200", as the worker registers it
};

struct SlotPlan {
  int number = 0;  // 0, 1, ... in the order the slots are listed
  // The executor's CUDA_VISIBLE_DEVICES: one GPU's entry, "" to hide every GPU (--gpus none),
  // nullopt to leave the worker's own (no GPU here).
  std::optional<std::string> cuda_visible_devices;
  std::vector<std::string> devices;  // registered with the server; empty on the CPU
  // Other slots run on the same GPU (--trials-per-gpu above 1): the executor then gives its
  // cached GPU memory back after every trial (GRIDEXP_SHARED_GPU, docs/executor.md).
  bool shares_gpu = false;
  int position_on_gpu = 0;  // 0, 1, ... among the slots of its GPU (gpu_share.h)
};

// `detected`: detect_devices() ("GPU <minor>: <model>"); `cuda_visible_devices`: the worker's
// own variable, when set. An entry CUDA would not accept (a number the driver does not list)
// ends the list there, as it does for CUDA.
std::vector<VisibleGpu> visible_gpus(const std::vector<std::string>& detected,
                                     const std::optional<std::string>& cuda_visible_devices);

// The slots, or a one-line error that names the flag and the GPUs there are (exit status 2).
Result<std::vector<SlotPlan>> plan_slots(const GpuChoice& choice, int trials_per_gpu,
                                         const std::vector<VisibleGpu>& visible);

// "slot 3 (GPU 1: NVIDIA H200)" or "slot 0 (CPU)", for the console.
std::string slot_label(const SlotPlan& slot);

}  // namespace gridexp
