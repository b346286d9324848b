// GpuPacking: the rule --trials-per-gpu auto follows to decide how many trials share one GPU,
// as pure arithmetic over what was measured (no threads, no NVML calls: GpuShare feeds it).
//
// The rule, per GPU (README.md, "Running workers"):
//   K_fit = floor(total * 0.9 / (largest peak + 512 MiB)), between 1 and 8
// where `total` is the GPU's memory as NVML reports it, `largest peak` the largest peak GPU
// memory (torch.cuda.max_memory_allocated) a trial on that GPU has reported so far, and
// 512 MiB an allowance per executor for what that peak does not count: the CUDA context and
// PyTorch's cached blocks. Until a trial has reported a peak, or without NVML, K is 1. Sharers
// are added one at a time, as trials finish: with P trials' peaks reported, at most P + 1 run
// at once. An out-of-memory error while N trials shared the GPU lowers its ceiling to N - 1
// (at least 1) for the rest of the run. A trial joins others already running only while NVML
// says at most 85% of the GPU's memory is in use (pressure); the first trial always starts.
// Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>

namespace gridexp {

// The most slots --trials-per-gpu auto plans on one GPU.
inline constexpr int kMaxAutoTrialsPerGpu = 8;

struct PackingRule {
  double usable_fraction = 0.9;                                // of the GPU's total memory
  std::int64_t per_trial_allowance = std::int64_t{512} << 20;  // context and cache, per executor
  int max_trials = kMaxAutoTrialsPerGpu;                       // slots per GPU, whatever fits
  double pressure_fraction = 0.85;  // used above this share of total: no trial joins
};

// What is known about one GPU's memory.
struct GpuMemoryView {
  std::optional<std::int64_t> total_bytes;         // NVML; none without it
  std::optional<std::int64_t> used_bytes;          // NVML, now
  std::optional<std::int64_t> largest_peak_bytes;  // the largest peak reported on this GPU
};

// K_fit: how many trials of the largest measured peak fit on the GPU (1 to rule.max_trials).
int trials_that_fit(const GpuMemoryView& gpu, const PackingRule& rule = {});

// The most trials that may run on the GPU at once now: K_fit, at most one more than the
// `peaks_reported` so far, and at most `out_of_memory_ceiling`; at least 1.
int packing_ceiling(const GpuMemoryView& gpu, int peaks_reported, int out_of_memory_ceiling,
                    const PackingRule& rule = {});

// Whether one more trial may start on a GPU where `running` trials run and at most `ceiling`
// may (packing_ceiling), given the pressure NVML reports.
bool may_join(int running, int ceiling, const GpuMemoryView& gpu, const PackingRule& rule = {});

// The ceiling after a trial ran out of GPU memory while `most_at_once` trials ran on its GPU.
int ceiling_after_out_of_memory(int ceiling, int most_at_once);

}  // namespace gridexp
