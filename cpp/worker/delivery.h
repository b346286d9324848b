// Delivery: a finished trial's outcome to the server, through the Outbox. Uploads the model
// while the trial's TrialLink (if any) keeps the lease alive, flushes and stops the link, then
// completes or fails the trial; the kept outcome is forgotten once the server answered (or
// said the lease is gone). Results over kMaxJsonBodyBytes (or answered 413) and a model over
// --max-upload-mb fail the trial instead: the FinishedTrial then says so (succeeded false,
// the error). deliver_outbox() sends what earlier runs kept.
//
// Not thread-safe: one Delivery per slot thread, over that slot's ServerApi and Outbox.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "common/status.h"
#include "worker/outbox.h"
#include "worker/progress.h"
#include "worker/server_api.h"
#include "worker/server_connection.h"

namespace gridexp {

struct DeliveryReport {
  Status status;                 // ok once the server has the outcome
  bool ended_cancelled = false;  // the server recorded the failure as cancelled
  // The answer to the claim that the completion made (with `next_claim_id`), when it came.
  std::optional<nlohmann::json> next_claim;
};

class Delivery {
 public:
  Delivery(ServerApi& server, Outbox& outbox, FileSystem& fs, const RetryPolicy& retry,
           Progress& progress);

  // A non-empty `next_claim_id` claims the next trial with a completion.
  DeliveryReport deliver(FinishedTrial& finished, TrialLink* link,
                         const std::string& next_claim_id = "");
  Status deliver_outbox();
  Outbox& outbox() { return outbox_; }

 private:
  // Ok when the upload succeeded or the model is refused as too large (the trial then fails).
  Status upload_model(FinishedTrial& finished);
  Result<nlohmann::json> post_outcome(FinishedTrial& finished, const std::string& next_claim_id);
  void forget(const FinishedTrial& finished);
  Result<nlohmann::json> post(const std::string& trial_id, const char* action,
                              const std::string& text);

  ServerApi& server_;
  Outbox& outbox_;
  FileSystem& fs_;
  const RetryPolicy& retry_;
  Progress& progress_;
};

}  // namespace gridexp
