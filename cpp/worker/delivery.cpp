// Delivery: model upload, completion or failure, and the outbox's backlog.
#include "worker/delivery.h"

#include <cstdio>
#include <utility>

#include "common/sha256.h"

namespace gridexp {
namespace {

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string results_too_large_message(std::size_t body_bytes, const std::string& server_said) {
  char size[32];
  std::snprintf(size, sizeof size, "%.1f MiB", static_cast<double>(body_bytes) / (1 << 20));
  std::string message = std::string("results too large (") + size;
  message += server_said.empty() ? ", limit " + std::to_string(kMaxJsonBodyBytes >> 20) + " MiB)"
                                 : "; the server refused them: " + server_said + ")";
  return message + ": return fewer or smaller values (large arrays can go in the model file)";
}

DeliveryReport failed_report(Status status) {
  DeliveryReport report;
  report.status = std::move(status);
  return report;
}

bool lease_is_gone(const Status& status) {
  return status.code() == Code::kConflict || status.code() == Code::kNotFound;
}

void fail_instead(FinishedTrial& finished, std::string error) {
  finished.succeeded = false;
  finished.error = std::move(error);
  finished.traceback.clear();
}

}  // namespace

Delivery::Delivery(ServerApi& server, Outbox& outbox, FileSystem& fs, const RetryPolicy& retry,
                   Progress& progress)
    : server_(server), outbox_(outbox), fs_(fs), retry_(retry), progress_(progress) {}

void Delivery::forget(const FinishedTrial& finished) {
  // Best effort: a file left behind is delivered again, and the server answers 409.
  ignore_outcome(outbox_.remove(finished.trial_id));
  if (finished.model_path) ignore_outcome(fs_.remove(*finished.model_path));
}

Result<nlohmann::json> Delivery::post(const std::string& trial_id, const char* action,
                                      const std::string& text) {
  return call_with_retry([&] { return server_.post_json_text(trial_path(trial_id, action), text); },
                         retry_);
}

Status Delivery::upload_model(FinishedTrial& finished) {
  Result<std::string> sha = sha256_file_hex(*finished.model_path);
  if (!sha) return sha.status();
  Result<nlohmann::json> uploaded = call_with_retry(
      [&] {
        return server_.put_file(
            trial_path(finished.trial_id, "model"), *finished.model_path,
            {{"X-Gridexp-Lease-Token", finished.lease_token}, {"X-Gridexp-Sha256", *sha}});
      },
      retry_);
  if (uploaded) return Status::ok();
  if (lease_is_gone(uploaded.status())) forget(finished);
  if (uploaded.status().code() != Code::kTooLarge) return uploaded.status();
  fail_instead(finished, "the model file is larger than the server accepts (--max-upload-mb): " +
                             uploaded.status().message());
  return Status::ok();
}

Result<nlohmann::json> Delivery::post_outcome(FinishedTrial& finished,
                                              const std::string& next_claim_id) {
  if (finished.succeeded) {
    nlohmann::json body = {{"lease_token", finished.lease_token},
                           {"results", std::move(finished.results)}};
    if (!next_claim_id.empty()) body["next_claim_id"] = next_claim_id;
    if (finished.peak_gpu_memory_bytes) {
      body["peak_gpu_memory_bytes"] = *finished.peak_gpu_memory_bytes;
    }
    std::string text = dump_json(body);
    finished.results = std::move(body["results"]);
    // Results over the server's body limit fail the trial at once: sending them again (or
    // running the trial again) cannot help.
    std::optional<Result<nlohmann::json>> answered;
    if (text.size() <= kMaxJsonBodyBytes) answered = post(finished.trial_id, "complete", text);
    if (answered && answered->status().code() != Code::kTooLarge) return std::move(*answered);
    fail_instead(finished, results_too_large_message(text.size(),
                                                     answered ? answered->status().message() : ""));
  }
  nlohmann::json failure = {{"lease_token", finished.lease_token},
                            {"error", finished.error},
                            {"traceback", finished.traceback}};
  if (finished.peak_gpu_memory_bytes) {
    failure["peak_gpu_memory_bytes"] = *finished.peak_gpu_memory_bytes;
  }
  return post(finished.trial_id, "fail", dump_json(failure));
}

DeliveryReport Delivery::deliver(FinishedTrial& finished, TrialLink* link,
                                 const std::string& next_claim_id) {
  if (finished.model_path) {
    if (Status uploaded = upload_model(finished); !uploaded) return failed_report(uploaded);
  }
  // The last metrics and log lines go while the lease is still held.
  if (link != nullptr) link->flush_and_stop();
  Result<nlohmann::json> answer = post_outcome(finished, next_claim_id);
  if (answer || lease_is_gone(answer.status())) forget(finished);
  if (!answer) return failed_report(answer.status());
  DeliveryReport report;
  if (answer->is_object()) {
    report.ended_cancelled = answer->value("state", "") == "cancelled";
    if (answer->contains("next")) report.next_claim = (*answer)["next"];
  }
  return report;
}

Status Delivery::deliver_outbox() {
  Result<std::vector<FinishedTrial>> kept = outbox_.pending();
  if (!kept) return kept.status();
  for (FinishedTrial& finished : *kept) {
    Status status = deliver(finished, nullptr).status;
    progress_.message("delivered the kept outcome of trial " + finished.trial_id +
                      (status ? "" : ": " + status.message()));
  }
  return Status::ok();
}

}  // namespace gridexp
