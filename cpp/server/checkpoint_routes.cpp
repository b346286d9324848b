// PUT and GET /api/v1/trials/{id}/checkpoint (docs/protocol.md, "Checkpoints"): the trial's
// checkpoint streamed to disk and hashed (a ModelUpload from CheckpointFiles), renamed into
// place, recorded under the lease, the previous one deleted; and streamed back to the holder of
// the trial's lease. The file's name is built from the trial id (matched by the route as 16 hex
// digits) and the digest the server computed, never taken from the request.
#include <charconv>

#include "server/http_util.h"
#include "server/route_helpers.h"

namespace gridexp {
namespace {

// What the upload's headers declare, checked before any of its body is read.
struct DeclaredCheckpoint {
  std::string lease_token;
  std::string sha256;
  std::string kind;
  std::optional<std::int64_t> step;
};

bool is_sha256_hex(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<DeclaredCheckpoint> parse_checkpoint_headers(const ServerContext& context,
                                                    const httplib::Request& request) {
  DeclaredCheckpoint declared{request.get_header_value("X-Gridexp-Lease-Token"),
                              request.get_header_value("X-Gridexp-Sha256"),
                              request.get_header_value("X-Gridexp-Checkpoint-Kind"), std::nullopt};
  if (declared.lease_token.empty() || !is_sha256_hex(declared.sha256)) {
    return Status::invalid_argument(
        "a checkpoint upload needs the headers X-Gridexp-Lease-Token and X-Gridexp-Sha256 (64 "
        "lowercase hex digits)");
  }
  if (declared.kind != "object" && declared.kind != "file" && declared.kind != "directory") {
    return Status::invalid_argument("X-Gridexp-Checkpoint-Kind must be object, file or directory");
  }
  if (request.has_header("X-Gridexp-Checkpoint-Step")) {
    std::string text = request.get_header_value("X-Gridexp-Checkpoint-Step");
    std::int64_t step = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), step);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      return Status::invalid_argument("X-Gridexp-Checkpoint-Step must be an integer");
    }
    declared.step = step;
  }
  if (content_length(request).value_or(0) > context.max_upload_bytes) {
    return Status::too_large("the checkpoint is larger than --max-upload-mb");
  }
  return declared;
}

}  // namespace

void receive_checkpoint(ServerContext& context, const httplib::Request& request,
                        httplib::Response& response, const httplib::ContentReader& read_body) {
  std::string trial_id = request.matches[1];
  Result<DeclaredCheckpoint> declared = parse_checkpoint_headers(context, request);
  if (!declared) return refuse_unread_body(response, declared.status());
  if (Status lease = context.store.check_lease(trial_id, declared->lease_token); !lease) {
    return refuse_unread_body(response, lease);
  }
  Result<std::unique_ptr<ModelUpload>> upload =
      context.checkpoint_files.begin_upload(trial_id, context.max_upload_bytes);
  if (!upload) return refuse_unread_body(response, upload.status());
  ModelUpload& received = **upload;
  if (Status body = receive_upload_body(received, response, read_body, "checkpoint"); !body) {
    return refuse_unread_body(response, body);
  }
  if (Status finished = received.finish(declared->sha256); !finished) {
    return send_status_error(response, finished);
  }
  // Checked again after the body: a lease that ran out meanwhile renames nothing.
  if (Status lease = context.store.check_lease(trial_id, declared->lease_token); !lease) {
    return send_lease_error(response, lease);
  }
  CheckpointInfo checkpoint;
  checkpoint.step = declared->step;
  checkpoint.kind = declared->kind;
  checkpoint.size_bytes = static_cast<std::int64_t>(received.size_bytes());
  checkpoint.sha256 = received.sha256();
  checkpoint.file_name = CheckpointFiles::file_name_for(trial_id, received.sha256());
  Status committed = context.checkpoint_files.commit(received, trial_id, checkpoint.file_name, [&] {
    return context.store.record_checkpoint(trial_id, declared->lease_token, checkpoint);
  });
  if (!committed) return send_lease_error(response, committed);
  ++context.metrics.checkpoint_uploads;
  context.metrics.checkpoint_bytes += received.size_bytes();
  send_json(response, 200,
            {{"sha256", checkpoint.sha256},
             {"size", checkpoint.size_bytes},
             {"step", optional_value(checkpoint.step)}});
}

void send_checkpoint(ServerContext& context, const httplib::Request& request,
                     httplib::Response& response) {
  std::string trial_id = request.matches[1];
  std::string lease_token = request.get_header_value("X-Gridexp-Lease-Token");
  if (lease_token.empty()) {
    return send_error(response, 400,
                      "a checkpoint download needs the header X-Gridexp-Lease-Token");
  }
  if (Status lease = context.store.check_lease(trial_id, lease_token); !lease) {
    return send_lease_error(response, lease);
  }
  Result<TrialRecord> trial = context.store.get_trial(trial_id);
  if (!trial) return send_status_error(response, trial.status());
  const std::optional<CheckpointInfo>& checkpoint = trial->checkpoint;
  if (!checkpoint || !CheckpointFiles::is_checkpoint_file_name(checkpoint->file_name)) {
    return send_error(response, 404, "no checkpoint", {{"trial", trial_id}});
  }
  response.set_header("X-Gridexp-Sha256", checkpoint->sha256);
  if (checkpoint->step) {
    response.set_header("X-Gridexp-Checkpoint-Step", std::to_string(*checkpoint->step));
  }
  response.set_header("X-Gridexp-Checkpoint-Kind", checkpoint->kind);
  response.set_header("X-Gridexp-Checkpoint-Attempt", std::to_string(checkpoint->attempt));
  serve_file(request, response,
             {context.checkpoint_files.path_of(checkpoint->file_name), checkpoint->sha256,
              "application/octet-stream", ""});
  if (response.status != 404 && response.status != 500) ++context.metrics.checkpoint_downloads;
}

void forget_done_checkpoint(ServerContext& context, const std::string& trial_id) {
  context.checkpoint_files.forget_unreferenced(trial_id, [&](const std::string& file_name) {
    Result<TrialRecord> trial = context.store.get_trial(trial_id);
    // On a store error the file is kept: a server start removes it if it is unreferenced.
    return !trial || (trial->checkpoint && trial->checkpoint->file_name == file_name);
  });
}

}  // namespace gridexp
