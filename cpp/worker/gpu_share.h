// GpuShare: the executor slots on one GPU taking turns at it. One object per GPU that has
// several slots (--trials-per-gpu K >= 2, or auto), shared by those slots' threads; each slot
// names itself by its position on the GPU (0 .. slots-1).
//
// A slot holds a turn from before it claims a trial until that trial is delivered, or its run
// has ended when its model upload goes on in the background (or the claim brought none):
// start()/try_start() take one, finish() gives it back. How many turns may be held at once is the
// GPU's ceiling: K with a fixed --trials-per-gpu; with auto, what gpu_packing.h allows from the
// peaks reported to finish() and the GPU's memory as `read` (NVML) says, lowered by out-of-memory
// errors.
//
// A trial that ran out of GPU memory while it shared the GPU (shared_during_turn()) runs again
// alone: start_alone() gives up its slot's turn, waits until the other slots' trials have
// finished while no slot starts a new one, and holds the GPU alone until end_alone(), after
// which the slot holds an ordinary turn until finish().
//
// Thread-safety: every method is safe from any thread (one mutex, one condition variable);
// the blocking ones (start, start_alone) check `give_up` at least every 100 ms and return
// false once it answers true. A position is used by one slot thread at a time.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/gpu_sample.h"
#include "worker/gpu_packing.h"

namespace gridexp {

class GpuShare {
 public:
  enum class Mode {
    kFixed,      // --trials-per-gpu K: K turns at once
    kAutomatic,  // --trials-per-gpu auto: gpu_packing.h
  };
  // The GPU's NVML reading, or nullopt (no NVML; auto then allows one trial at a time).
  using MemoryReader = std::function<std::optional<GpuSample>()>;
  using GiveUp = std::function<bool()>;

  GpuShare(Mode mode, int slots, MemoryReader read, PackingRule rule = {});

  // Takes a turn for `position` when one is free now.
  bool try_start(int position);
  // Waits for a turn; false when `give_up` answered true first.
  bool start(int position, const GiveUp& give_up);
  // Ends the position's turn (whatever its state; nothing when it holds none) and, when the
  // trial measured one, keeps its peak GPU memory for the ceiling.
  void finish(int position, std::optional<std::int64_t> peak_bytes = std::nullopt);

  // Whether another slot's trial ran on the GPU at some moment of the position's turn.
  bool shared_during_turn(int position) const;
  // For a holder of a turn whose trial ran out of memory while shared: lowers the ceiling
  // (auto), then waits, holding no turn, until no trial runs, and takes the GPU alone. false
  // when `give_up` answered true first (the position then holds no turn).
  bool start_alone(int position, const GiveUp& give_up);
  // The GPU is no longer the position's alone; its turn goes on until finish().
  void end_alone(int position);

  // How many trials may run at once now (with auto: packing_ceiling()).
  int ceiling() const;
  int running() const;

 private:
  enum class Turn { kIdle, kRunning, kWaitingAlone, kAlone };

  int ceiling_locked(const GpuMemoryView& gpu) const;
  GpuMemoryView read_memory_locked() const;
  bool may_start_locked() const;
  void grant_locked(int position);
  // Waits on the condition until `ready` or `give_up` (true: ready).
  bool wait_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready,
                   const GiveUp& give_up);

  const Mode mode_;
  const int slots_;
  const MemoryReader read_;
  const PackingRule rule_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Turn> turns_;
  std::vector<int> most_at_once_;  // per position: the most trials at once during its turn
  int running_ = 0;                // turns held (kRunning or kAlone)
  int waiting_alone_ = 0;
  bool held_alone_ = false;
  int out_of_memory_ceiling_;
  std::optional<std::int64_t> largest_peak_bytes_;
  int peaks_reported_ = 0;
};

// A slot's place at its GPU's share: empty (no share) for a slot alone on its GPU or the CPU.
struct GpuSeat {
  std::shared_ptr<GpuShare> share;
  int position = 0;

  explicit operator bool() const { return share != nullptr; }
};

}  // namespace gridexp
