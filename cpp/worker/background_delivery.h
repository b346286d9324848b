// BackgroundDelivery: one slot's model uploads, each with the completion (or failure) that
// follows it, on a thread of their own, so that the slot's next trial runs while the model of
// the one before goes to the server (docs/executor.md, "Executor slots").
//
// A handed-over trial's outcome is already in the Outbox: a delivery that cannot finish
// (server gone, Ctrl-C) leaves it there, to be sent by a later run. Its TrialLink, handed over
// with it, keeps the lease alive until the completion. At most one delivery is in flight: start()
// waits for the one before, so a slot keeps at most one finished trial's model file (and its
// outcome in memory) besides the one it runs, however slow the server.
//
// Thread-safety: start(), wait() and take_delivered() are for the slot's thread only; `done`
// (given to start) runs on the delivery thread when the delivery has ended. The Delivery it
// uses must have a ServerApi of its own (ServerApi is not thread-safe); its Outbox may be the
// slot's (files of different trials; the slot never sends the backlog while a delivery is in
// flight, see WorkerSlot).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"
#include "worker/delivery.h"
#include "worker/outbox.h"
#include "worker/progress.h"
#include "worker/server_api.h"

namespace gridexp {

// A trial that ran to its end, whose model is still to upload before it is completed.
struct HandedOverTrial {
  FinishedTrial finished;  // kept in the outbox already
  std::unique_ptr<TrialLink> link;
  bool cancelled = false;  // the user asked the trial to stop while it ran
};

// How a handed-over trial's delivery ended.
struct DeliveredTrial {
  std::string trial_id;
  bool succeeded = false;  // false too when delivery failed it (a model over --max-upload-mb)
  bool cancelled = false;
  std::string error;
  Status status;  // ok once the server has the outcome
};

class BackgroundDelivery {
 public:
  using Done = std::function<void(const DeliveredTrial&)>;

  BackgroundDelivery(Delivery& delivery, Progress& progress);
  // Waits for the delivery in flight.
  ~BackgroundDelivery();
  BackgroundDelivery(const BackgroundDelivery&) = delete;
  BackgroundDelivery& operator=(const BackgroundDelivery&) = delete;

  // Waits for the delivery in flight, then delivers `trial` on the delivery thread and calls
  // `done` (may be empty) there once the server has answered or delivery gave up.
  void start(HandedOverTrial trial, Done done);
  // Waits until no delivery is in flight.
  void wait();
  // How the last delivery ended, once it has ended and only once.
  std::optional<DeliveredTrial> take_delivered();

 private:
  DeliveredTrial deliver(HandedOverTrial& trial);

  Delivery& delivery_;
  Progress& progress_;
  std::mutex mutex_;
  std::optional<DeliveredTrial> delivered_;
  std::jthread thread_;
};

}  // namespace gridexp
