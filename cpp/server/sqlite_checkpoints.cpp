// SqliteStore's checkpoints: each trial's current one (columns checkpoint_* of trials, schema
// version 8), recorded under the trial's lease, read by a claim for the attempt that resumes
// from it, dropped when the trial is done, and listed for a server start's clean-up.
#include "server/sqlite_store_impl.h"

namespace gridexp {

Result<std::optional<std::string>> SqliteStore::Impl::record_checkpoint(
    const std::string& trial_id, const std::string& lease_token, const CheckpointInfo& checkpoint,
    TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  Result<std::optional<CheckpointInfo>> previous = checkpoint_of(trial_id);
  if (!previous) return previous.status();
  Statement update = statement(
      "UPDATE trials SET checkpoint_file = ?2, checkpoint_step = ?3, checkpoint_kind = ?4, "
      "checkpoint_size = ?5, checkpoint_sha256 = ?6, checkpoint_attempt = ?7, "
      "checkpoint_saved_ms = ?8 WHERE id = ?1");
  update.bind(1, trial_id).bind(2, checkpoint.file_name);
  bind_optional(update, 3, checkpoint.step)
      .bind(4, checkpoint.kind)
      .bind(5, checkpoint.size_bytes)
      .bind(6, checkpoint.sha256)
      .bind(7, held->attempt)
      .bind(8, now);
  if (Status status = update.execute(); !status) return status;
  if (Status touched = touch_worker(held->worker_id, now); !touched) return touched;
  if (*previous && (*previous)->file_name != checkpoint.file_name) {
    return std::optional<std::string>((*previous)->file_name);
  }
  return std::optional<std::string>();
}

Result<std::optional<CheckpointInfo>> SqliteStore::Impl::checkpoint_of(
    const std::string& trial_id) {
  if (!records_checkpoints) return std::optional<CheckpointInfo>();
  Statement query = statement(
      "SELECT checkpoint_file, checkpoint_step, checkpoint_kind, checkpoint_size, "
      "checkpoint_sha256, checkpoint_attempt, checkpoint_saved_ms FROM trials "
      "WHERE id = ?1 AND checkpoint_file IS NOT NULL");
  Result<bool> found = query.bind(1, trial_id).next_row();
  if (!found) return found.status();
  if (!*found) return std::optional<CheckpointInfo>();
  CheckpointInfo checkpoint;
  checkpoint.file_name = query.text(0);
  checkpoint.step = query.optional_integer(1);
  checkpoint.kind = query.text(2);
  checkpoint.size_bytes = query.integer(3);
  checkpoint.sha256 = query.text(4);
  checkpoint.attempt = static_cast<int>(query.integer(5));
  checkpoint.saved_ms = query.integer(6);
  return std::optional<CheckpointInfo>(std::move(checkpoint));
}

Status SqliteStore::Impl::drop_checkpoint(const std::string& trial_id) {
  if (!records_checkpoints) return Status::ok();
  return statement(
             "UPDATE trials SET checkpoint_file = NULL, checkpoint_step = NULL, "
             "checkpoint_kind = NULL, checkpoint_size = NULL, checkpoint_sha256 = NULL, "
             "checkpoint_attempt = NULL, checkpoint_saved_ms = NULL "
             "WHERE id = ?1 AND checkpoint_file IS NOT NULL")
      .bind(1, trial_id)
      .execute();
}

Result<std::vector<std::string>> SqliteStore::Impl::checkpoint_files() {
  Statement query =
      statement("SELECT checkpoint_file FROM trials WHERE checkpoint_file IS NOT NULL");
  std::vector<std::string> files;
  Status read = query.each_row([&] { files.push_back(query.text(0)); });
  if (!read) return read;
  return files;
}

}  // namespace gridexp
