// GroupCommit: runs the calls of many threads in batches, one batch at a time, so that every
// call that arrived while one batch ran goes into the next one together (for the store: one
// transaction and one COMMIT for all of them, instead of one each).
//
// No thread of its own: the caller that finds no batch running runs the batch itself, made of
// every call queued until then, its own included; the others sleep until their batch has run,
// each on its own condition variable (no thundering herd). When a batch ends with calls queued,
// the first of them runs the next. Calls run in arrival order, so a caller waits for at most
// the batch running when it arrived and its own: under contention the wait is FIFO, where a
// plain mutex hands over in no particular order.
//
// `run_batch` must not throw. submit() is safe from any number of threads; a call lives on
// its caller's stack, and run_batch may touch it only until it returns.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace gridexp {

struct GroupCommitStats {
  std::int64_t calls = 0;
  std::int64_t batches = 0;
};

template <typename Call>
class GroupCommit {
 public:
  using RunBatch = std::function<void(const std::vector<Call*>& batch)>;

  explicit GroupCommit(RunBatch run_batch) : run_batch_(std::move(run_batch)) {}
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Returns once a batch holding `call` has run, on this thread or another.
  void submit(Call& call) {
    Waiter self(&call);
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.push_back(&self);
    ++stats_.calls;
    if (batch_running_) {
      self.wake.wait(lock, [&] { return self.finished || self.runs_next_batch; });
      if (self.finished) return;
    }
    batch_running_ = true;
    batch_.swap(queue_);  // the queue takes over the last batch's (empty) storage
    ++stats_.batches;
    lock.unlock();

    batch_calls_.clear();
    for (Waiter* waiter : batch_) batch_calls_.push_back(waiter->call);
    run_batch_(batch_calls_);

    lock.lock();
    // Notified under the lock: a waiter cannot return (and destroy its condition variable)
    // before the lock is released.
    for (Waiter* waiter : batch_) {
      waiter->finished = true;
      if (waiter != &self) waiter->wake.notify_one();
    }
    batch_.clear();
    if (queue_.empty()) {
      batch_running_ = false;
    } else {
      queue_.front()->runs_next_batch = true;
      queue_.front()->wake.notify_one();
    }
  }

  GroupCommitStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  // Calls queued behind the batch running now.
  std::size_t waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }

 private:
  struct Waiter {
    explicit Waiter(Call* waiting) : call(waiting) {}
    Call* call;
    std::condition_variable wake;
    bool finished = false;
    bool runs_next_batch = false;
  };

  const RunBatch run_batch_;
  mutable std::mutex mutex_;
  std::vector<Waiter*> queue_;  // guarded by mutex_
  // The batch running now: used only by the thread running it (batch_running_ set by it).
  std::vector<Waiter*> batch_;
  std::vector<Call*> batch_calls_;
  bool batch_running_ = false;  // guarded by mutex_
  GroupCommitStats stats_;      // guarded by mutex_
};

}  // namespace gridexp
