// BackgroundDelivery: a finished trial's upload and completion beside the next trial.
#include "worker/background_delivery.h"

#include <utility>

namespace gridexp {

BackgroundDelivery::BackgroundDelivery(Delivery& delivery, Progress& progress)
    : delivery_(delivery), progress_(progress) {}

BackgroundDelivery::~BackgroundDelivery() { wait(); }

void BackgroundDelivery::wait() {
  if (thread_.joinable()) thread_.join();
}

std::optional<DeliveredTrial> BackgroundDelivery::take_delivered() {
  if (thread_.joinable()) {
    std::lock_guard lock(mutex_);
    if (!delivered_) return std::nullopt;  // still in flight
  }
  wait();
  std::lock_guard lock(mutex_);
  return std::exchange(delivered_, std::nullopt);
}

void BackgroundDelivery::start(HandedOverTrial trial, Done done) {
  wait();
  {
    std::lock_guard lock(mutex_);
    delivered_.reset();
  }
  thread_ = std::jthread([this, trial = std::move(trial), done = std::move(done)]() mutable {
    DeliveredTrial delivered = deliver(trial);
    if (done) done(delivered);
    std::lock_guard lock(mutex_);
    delivered_ = std::move(delivered);
  });
}

DeliveredTrial BackgroundDelivery::deliver(HandedOverTrial& trial) {
  FinishedTrial& finished = trial.finished;
  DeliveryReport report = delivery_.deliver(finished, trial.link.get());
  trial.link.reset();  // its heartbeats end with the lease, or now when delivery gave up
  DeliveredTrial delivered{finished.trial_id, finished.succeeded,
                           trial.cancelled || report.ended_cancelled, finished.error,
                           report.status};
  std::string summary = finished.succeeded ? finished.results.dump() : finished.error;
  if (delivered.cancelled) summary = "cancelled by the user: " + summary;
  if (!report.status) {
    summary += " (not delivered: " + report.status.message() + "; kept in the outbox)";
  }
  progress_.trial_finished(finished.trial_id, finished.succeeded && report.status, summary);
  return delivered;
}

}  // namespace gridexp
