// PUT /api/v1/trials/{id}/model (docs/protocol.md, "Model upload"): the model file streamed to
// disk and hashed (ModelUpload), then committed under the lease.
#include "common/file_system.h"
#include "server/http_util.h"
#include "server/route_helpers.h"

namespace gridexp {
namespace {

// The upload's headers and declared length, checked before any of its body is read.
Status check_upload_headers(const ServerContext& context, const httplib::Request& request,
                            const std::string& lease_token, const std::string& declared_sha) {
  if (lease_token.empty() || declared_sha.size() != 64) {
    return Status::invalid_argument(
        "a model upload needs the headers X-Gridexp-Lease-Token and X-Gridexp-Sha256 (64 hex "
        "digits)");
  }
  if (content_length(request).value_or(0) > context.max_upload_bytes) {
    return Status::too_large("the model is larger than --max-upload-mb");
  }
  return Status::ok();
}

// Moves the received model into place and records it, if the lease is still held; a model
// that cannot be recorded is removed again.
Status commit_model(ServerContext& context, const std::string& trial_id,
                    const std::string& lease_token, ModelUpload& upload) {
  std::lock_guard commit_lock(context.model_commit_mutex);
  Status status = context.store.check_lease(trial_id, lease_token);
  if (status) status = upload.commit();
  if (!status) return status;
  status = context.store.attach_model(
      trial_id, lease_token, {upload.sha256(), static_cast<std::int64_t>(upload.size_bytes())});
  if (!status) ignore_outcome(default_file_system().remove(context.model_files.path_for(trial_id)));
  return status;
}

}  // namespace

void receive_model(ServerContext& context, const httplib::Request& request,
                   httplib::Response& response, const httplib::ContentReader& read_body) {
  std::string trial_id = request.matches[1];
  std::string lease_token = request.get_header_value("X-Gridexp-Lease-Token");
  std::string declared_sha = request.get_header_value("X-Gridexp-Sha256");
  if (Status headers = check_upload_headers(context, request, lease_token, declared_sha);
      !headers) {
    return refuse_unread_body(response, headers);
  }
  if (Status lease = context.store.check_lease(trial_id, lease_token); !lease) {
    return refuse_unread_body(response, lease);
  }
  Result<std::unique_ptr<ModelUpload>> upload =
      context.model_files.begin_upload(trial_id, context.max_upload_bytes);
  if (!upload) return refuse_unread_body(response, upload.status());
  if (Status received = receive_upload_body(**upload, response, read_body, "model"); !received) {
    return refuse_unread_body(response, received);
  }
  if (Status finished = (*upload)->finish(declared_sha); !finished) {
    return send_status_error(response, finished);
  }
  if (Status committed = commit_model(context, trial_id, lease_token, **upload); !committed) {
    return send_lease_error(response, committed);
  }
  context.metrics.model_bytes_uploaded += (*upload)->size_bytes();
  send_json(response, 200, {{"sha256", (*upload)->sha256()}, {"size", (*upload)->size_bytes()}});
}

}  // namespace gridexp
