// AcceleratorMemory over torch.cuda, and each trial's peak GPU memory. Every call looks up
// sys.modules["torch"].cuda afresh and does nothing (answers empty) unless torch is imported
// and CUDA initialized, so no CUDA call ever happens on a machine without CUDA or torch, and
// the executor never imports torch itself. A Python error is reported on stderr and answered
// as "nothing known": freeing memory or measuring it never fails a trial.
//
// GIL held; only the thread that runs trials.
#pragma once

#include <cstdint>
#include <optional>

#include <pybind11/pybind11.h>

#include "executor/accelerator_memory.h"

namespace gridexp {

class TorchCudaMemory final : public AcceleratorMemory {
 public:
  std::optional<std::int64_t> allocated_bytes() override;
  void collect_garbage() override;
  void empty_cache() override;

  // torch.cuda.reset_peak_memory_stats(d) for every visible device d.
  void reset_peaks();
  // The highest torch.cuda.max_memory_allocated(d) over the visible devices: the trial's peak
  // after reset_peaks() (or since CUDA was initialized, when the trial initialized it).
  std::optional<std::int64_t> peak_bytes();

 private:
  // torch.cuda when torch is imported and CUDA initialized, else None.
  pybind11::object initialized_cuda();
  // `per_device(cuda, d)` summed (or, with `take_max`, maxed) over the visible devices.
  template <typename PerDevice>
  std::optional<std::int64_t> over_devices(const char* what, bool take_max, PerDevice per_device);
};

}  // namespace gridexp
