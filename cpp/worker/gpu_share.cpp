// GpuShare: turns at one GPU for its executor slots.
#include "worker/gpu_share.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace gridexp {
namespace {

constexpr std::chrono::milliseconds kGiveUpPoll{100};

}  // namespace

GpuShare::GpuShare(Mode mode, int slots, MemoryReader read, PackingRule rule)
    : mode_(mode),
      slots_(std::max(1, slots)),
      read_(std::move(read)),
      rule_(rule),
      turns_(static_cast<std::size_t>(slots_), Turn::kIdle),
      most_at_once_(static_cast<std::size_t>(slots_), 0),
      out_of_memory_ceiling_(slots_) {}

GpuMemoryView GpuShare::read_memory_locked() const {
  GpuMemoryView gpu;
  gpu.largest_peak_bytes = largest_peak_bytes_;
  std::optional<GpuSample> sample = read_ ? read_() : std::nullopt;
  if (sample && sample->memory_total_bytes > 0) {
    gpu.total_bytes = static_cast<std::int64_t>(sample->memory_total_bytes);
    gpu.used_bytes = static_cast<std::int64_t>(sample->memory_used_bytes);
  }
  return gpu;
}

int GpuShare::ceiling_locked(const GpuMemoryView& gpu) const {
  if (mode_ == Mode::kFixed) return slots_;
  PackingRule rule = rule_;
  rule.max_trials = std::min(rule.max_trials, slots_);
  return packing_ceiling(gpu, peaks_reported_, out_of_memory_ceiling_, rule);
}

bool GpuShare::may_start_locked() const {
  if (waiting_alone_ > 0 || held_alone_) return false;
  if (running_ == 0) return true;
  if (mode_ == Mode::kFixed) return running_ < slots_;
  GpuMemoryView gpu = read_memory_locked();
  return may_join(running_, ceiling_locked(gpu), gpu, rule_);
}

void GpuShare::grant_locked(int position) {
  ++running_;
  turns_[static_cast<std::size_t>(position)] = Turn::kRunning;
  most_at_once_[static_cast<std::size_t>(position)] = 0;
  for (std::size_t other = 0; other < turns_.size(); ++other) {
    if (turns_[other] == Turn::kRunning || turns_[other] == Turn::kAlone) {
      most_at_once_[other] = std::max(most_at_once_[other], running_);
    }
  }
}

bool GpuShare::wait_locked(std::unique_lock<std::mutex>& lock, const std::function<bool()>& ready,
                           const GiveUp& give_up) {
  while (!ready()) {
    if (give_up && give_up()) return false;
    changed_.wait_for(lock, kGiveUpPoll);
  }
  return true;
}

bool GpuShare::try_start(int position) {
  std::lock_guard lock(mutex_);
  if (turns_[static_cast<std::size_t>(position)] != Turn::kIdle) return true;
  if (!may_start_locked()) return false;
  grant_locked(position);
  return true;
}

bool GpuShare::start(int position, const GiveUp& give_up) {
  std::unique_lock lock(mutex_);
  if (turns_[static_cast<std::size_t>(position)] != Turn::kIdle) return true;
  if (!wait_locked(
          lock, [this] { return may_start_locked(); }, give_up))
    return false;
  grant_locked(position);
  return true;
}

void GpuShare::finish(int position, std::optional<std::int64_t> peak_bytes) {
  {
    std::lock_guard lock(mutex_);
    if (peak_bytes) {
      largest_peak_bytes_ = std::max(largest_peak_bytes_.value_or(0), *peak_bytes);
      ++peaks_reported_;
    }
    Turn& turn = turns_[static_cast<std::size_t>(position)];
    if (turn == Turn::kRunning || turn == Turn::kAlone) --running_;
    if (turn == Turn::kAlone) held_alone_ = false;
    if (turn == Turn::kWaitingAlone) --waiting_alone_;
    turn = Turn::kIdle;
  }
  changed_.notify_all();
}

bool GpuShare::shared_during_turn(int position) const {
  std::lock_guard lock(mutex_);
  return most_at_once_[static_cast<std::size_t>(position)] > 1;
}

bool GpuShare::start_alone(int position, const GiveUp& give_up) {
  std::unique_lock lock(mutex_);
  Turn& turn = turns_[static_cast<std::size_t>(position)];
  if (turn == Turn::kAlone) return true;
  if (mode_ == Mode::kAutomatic) {
    out_of_memory_ceiling_ = ceiling_after_out_of_memory(
        out_of_memory_ceiling_, most_at_once_[static_cast<std::size_t>(position)]);
  }
  if (turn == Turn::kRunning) --running_;
  turn = Turn::kWaitingAlone;
  ++waiting_alone_;
  changed_.notify_all();
  bool ready = wait_locked(
      lock, [this] { return running_ == 0 && !held_alone_; }, give_up);
  --waiting_alone_;
  if (!ready) {
    turn = Turn::kIdle;
    changed_.notify_all();
    return false;
  }
  turn = Turn::kAlone;
  held_alone_ = true;
  running_ = 1;
  most_at_once_[static_cast<std::size_t>(position)] = 1;
  return true;
}

void GpuShare::end_alone(int position) {
  {
    std::lock_guard lock(mutex_);
    Turn& turn = turns_[static_cast<std::size_t>(position)];
    if (turn != Turn::kAlone) return;
    turn = Turn::kRunning;
    held_alone_ = false;
  }
  changed_.notify_all();
}

int GpuShare::ceiling() const {
  std::lock_guard lock(mutex_);
  return ceiling_locked(read_memory_locked());
}

int GpuShare::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

}  // namespace gridexp
