// What the executor frees after a trial (docs/executor.md, "GPU memory between trials"): the
// memory one trial leaves behind must not reach the next, and a trial that left nothing
// behind pays for neither a full garbage collection nor an emptied cache.
//
// The policy is Python-free: it talks to the accelerator through AcceleratorMemory, which
// the executor implements over torch.cuda (torch_memory.h) and tests implement with fakes.
// Used only by the thread that runs trials.
#pragma once

#include <cstdint>
#include <optional>

#include "common/executor_protocol.h"

namespace gridexp {

// True when `value` (the variable's value, null when unset) says the GPU is shared.
bool shared_gpu_from_environment(const char* value);

class AcceleratorMemory {
 public:
  virtual ~AcceleratorMemory() = default;
  // Bytes held by live tensors, summed over the visible devices; empty while no accelerator
  // is in use (torch not imported, or CUDA not initialized).
  virtual std::optional<std::int64_t> allocated_bytes() = 0;
  // A full garbage collection (frees tensors held in reference cycles, like a traceback's).
  virtual void collect_garbage() = 0;
  // Gives the cached blocks no tensor uses back to the driver.
  virtual void empty_cache() = 0;
};

// What release_after_trial did, for tests and logs.
struct ReleaseReport {
  bool collected_garbage = false;
  bool emptied_cache = false;
};

// After a trial whose run began with `allocated_before` (empty: no accelerator in use then):
// collects garbage only when more is allocated now than before, and empties the cache only
// when more is still allocated after that collection or when the GPU is `shared` with other
// executors (they may need what this one caches). Does nothing while no accelerator is in use.
ReleaseReport release_after_trial(AcceleratorMemory& memory,
                                  std::optional<std::int64_t> allocated_before, bool shared);

}  // namespace gridexp
