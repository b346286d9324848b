// SqliteStore's workers and leases: registering a worker, claiming a trial (a claim sent
// again gets the same lease, with the trial's checkpoint), heartbeats, metrics and models under
// a lease, the ways a lease ends (complete, fail, release, preemption, lost executor) and the
// requeue of leases that ran out.
//
// Hot path: a claim probes two partial indexes (the expired-lease prefix of `trials_leased`,
// the first entry of `trials_claimable`) and reads its counts from `trial_counts`; every
// other lease call touches one trial by primary key.
#include "common/auth.h"
#include "common/random.h"
#include "server/sqlite_rows.h"
#include "server/sqlite_store_impl.h"

namespace gridexp {
namespace {

constexpr std::size_t kLeaseTokenBytes = 16;
constexpr std::size_t kWorkerIdBytes = 8;

// The lease on the trial in `row`'s next row, if it has one (columns: id, experiment,
// hyperparameters, attempts, then the lease token unless `fresh`). A fresh lease is the
// trial's next attempt, with a new token.
Result<std::optional<Lease>> lease_in_row(sql::Statement& row, bool fresh, TimeMs expires_ms) {
  Result<bool> found = row.next_row();
  if (!found) return found.status();
  if (!*found) return std::optional<Lease>();
  Result<nlohmann::json> hyperparameters = sql::parse_stored_json(row.text(2), "hyperparameters");
  if (!hyperparameters) return hyperparameters.status();
  const int attempts = static_cast<int>(row.integer(3));
  return std::optional<Lease>(Lease{
      row.text(0), row.text(1), std::move(hyperparameters).value(), fresh ? attempts + 1 : attempts,
      fresh ? random_hex(kLeaseTokenBytes) : row.text(4), expires_ms, std::nullopt});
}

}  // namespace

using sql::dump_json;

Result<WorkerRecord> SqliteStore::Impl::register_worker(const WorkerInfo& info, TimeMs now) {
  WorkerRecord worker;
  worker.id = random_hex(kWorkerIdBytes);
  worker.info = info;
  worker.first_seen_ms = now;
  worker.last_seen_ms = now;
  Statement insert = statement(
      records_slurm_placements
          ? "INSERT INTO workers (id, host, pid, devices, version, first_seen_ms, last_seen_ms, "
            "slurm) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)"
          : "INSERT INTO workers (id, host, pid, devices, version, first_seen_ms, last_seen_ms) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
  insert.bind(1, worker.id)
      .bind(2, info.host)
      .bind(3, info.pid)
      .bind(4, dump_json(info.devices))
      .bind(5, info.version)
      .bind(6, now);
  // SQL NULL outside Slurm, not the JSON text "null".
  if (info.slurm && records_slurm_placements) insert.bind(7, dump_json(*info.slurm));
  Status status = insert.execute();
  if (!status) return status;
  return worker;
}

// The body of claim_next_trial (see Store): the lease of a claim sent again, or else the
// first pending trial in grid order.
Result<ClaimOutcome> SqliteStore::Impl::claim(const std::string& worker_id,
                                              const std::string& claim_id, TimeMs now) {
  if (Status touched = touch_worker(worker_id, now); !touched) return touched;
  if (sqlite3_changes(db) == 0) return Status::not_found("no worker " + worker_id);
  Result<std::int64_t> requeued = requeue_expired(now);
  if (!requeued) return requeued.status();

  ClaimOutcome outcome;
  Result<std::optional<Lease>> held =
      claim_id.empty() ? std::optional<Lease>() : lease_of_claim(worker_id, claim_id, now);
  if (!held) return held.status();
  if (*held) {
    outcome.lease = std::move(*held);
    outcome.resumed = true;
    Status status = set_lease_expiry(outcome.lease->trial_id, outcome.lease->lease_expires_ms);
    if (!status) return status;
  } else {
    Result<std::optional<Lease>> next = next_pending_lease(now);
    if (!next) return next.status();
    outcome.lease = std::move(*next);
  }
  if (outcome.lease) {
    Result<std::optional<CheckpointInfo>> checkpoint = checkpoint_of(outcome.lease->trial_id);
    if (!checkpoint) return checkpoint.status();
    outcome.lease->checkpoint = std::move(*checkpoint);
    if (!outcome.resumed) {
      Status status = start_attempt(*outcome.lease, worker_id, claim_id, now);
      if (!status) return status;
    }
  }
  if (Status counted = count_active_trials(outcome); !counted) return counted;
  return outcome;
}

// Moves a running trial's lease expiry (a heartbeat, or a claim sent again).
Status SqliteStore::Impl::set_lease_expiry(const std::string& trial_id, TimeMs expires_ms) {
  return statement("UPDATE trials SET lease_expires_ms = ?2 WHERE id = ?1")
      .bind(1, trial_id)
      .bind(2, expires_ms)
      .execute();
}

// The lease that `worker_id`'s claim `claim_id` got, if it is its current trial's and still
// live; its expiry moved to a full lease from `now`.
Result<std::optional<Lease>> SqliteStore::Impl::lease_of_claim(const std::string& worker_id,
                                                               const std::string& claim_id,
                                                               TimeMs now) {
  Statement held = statement(
      "SELECT t.id, t.experiment, t.hyperparameters, t.attempts, t.lease_token "
      "FROM workers w JOIN trials t ON t.id = w.current_trial "
      "WHERE w.id = ?1 AND w.last_claim_id = ?3 AND t.worker_id = ?1 "
      "AND t.state = 'running' AND t.lease_expires_ms > ?2");
  held.bind(1, worker_id).bind(2, now).bind(3, claim_id);
  return lease_in_row(held, /*fresh=*/false, now + options.lease_ms);
}

// A new lease on the first pending trial of the config in grid order, if there is one (not
// yet recorded: see start_attempt).
Result<std::optional<Lease>> SqliteStore::Impl::next_pending_lease(TimeMs now) {
  Statement next = statement(
      "SELECT id, experiment, hyperparameters, attempts FROM trials "
      "WHERE in_config = 1 AND state = 'pending' ORDER BY grid_index LIMIT 1");
  return lease_in_row(next, /*fresh=*/true, now + options.lease_ms);
}

// Records a new lease: its attempt in the history, the trial running under it, and the
// trial as the worker's current one (with the claim's id, for a claim sent again).
Status SqliteStore::Impl::start_attempt(const Lease& lease, const std::string& worker_id,
                                        const std::string& claim_id, TimeMs now) {
  Status status = statement(
                      "INSERT INTO trial_attempts (trial_id, attempt, worker_id, lease_token, "
                      "started_ms, outcome, previous_attempt_id) VALUES (?1, ?2, ?3, ?4, ?5, "
                      "'running', (SELECT last_attempt_id FROM trials WHERE id = ?1))")
                      .bind(1, lease.trial_id)
                      .bind(2, lease.attempt)
                      .bind(3, worker_id)
                      .bind(4, lease.lease_token)
                      .bind(5, now)
                      .execute();
  if (!status) return status;
  const std::int64_t attempt_id = sqlite3_last_insert_rowid(db);
  if (lease.checkpoint) {
    Statement resumed =
        statement("UPDATE trial_attempts SET resumed = 1, resumed_from_step = ?2 WHERE id = ?1");
    resumed.bind(1, attempt_id);
    status = bind_optional(resumed, 2, lease.checkpoint->step).execute();
    if (!status) return status;
  }
  // A claim starts the trial afresh: nothing of an earlier attempt stays attached.
  status = statement(
               "UPDATE trials SET state = 'running', attempts = ?2, "
               "lease_token = ?3, lease_expires_ms = ?4, worker_id = ?5, "
               "started_ms = ?6, finished_ms = NULL, error = NULL, "
               "traceback = NULL, model_sha256 = NULL, model_size = NULL, "
               "stop_requested = 0, last_attempt_id = ?7 WHERE id = ?1")
               .bind(1, lease.trial_id)
               .bind(2, lease.attempt)
               .bind(3, lease.lease_token)
               .bind(4, lease.lease_expires_ms)
               .bind(5, worker_id)
               .bind(6, now)
               .bind(7, attempt_id)
               .execute();
  if (!status) return status;
  // A claim without an id leaves the last one alone: a claim is sent again only right
  // after it was first sent, never after a later claim.
  Statement current = statement(
      claim_id.empty() ? "UPDATE workers SET current_trial = ?2 WHERE id = ?1"
                       : "UPDATE workers SET current_trial = ?2, last_claim_id = ?3 WHERE id = ?1");
  current.bind(1, worker_id).bind(2, lease.trial_id);
  if (!claim_id.empty()) current.bind(3, claim_id);
  return current.execute();
}

// Adds the active experiment's trials in config, by state, to `outcome`.
Status SqliteStore::Impl::count_active_trials(ClaimOutcome& outcome) {
  Statement counts = statement(
      "SELECT state, count FROM trial_counts "
      "WHERE experiment = (SELECT name FROM experiments WHERE active = 1) "
      "AND in_config = 1");
  return counts.each_row([&] {
    if (std::optional<TrialState> state = trial_state_from_string(counts.text(0))) {
      sql::add_count(outcome, *state, counts.integer(1));
    }
  });
}

Result<HeartbeatReply> SqliteStore::Impl::heartbeat(const std::string& trial_id,
                                                    const std::string& lease_token, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  HeartbeatReply reply{now + options.lease_ms, held->stop_requested, held->worker_id};
  Status status = set_lease_expiry(trial_id, reply.lease_expires_ms);
  if (!status) return status;
  status = touch_worker(held->worker_id, now);
  if (!status) return status;
  return reply;
}

Status SqliteStore::Impl::add_metrics(const std::string& trial_id, const std::string& lease_token,
                                      const std::vector<MetricPoint>& points, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  for (const MetricPoint& point : points) {
    Statement insert = statement(
        "INSERT INTO metrics (trial_id, attempt, step, time_ms, values_json) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    insert.bind(1, trial_id).bind(2, held->attempt);
    bind_optional(insert, 3, point.step).bind(4, point.time_ms).bind(5, dump_json(point.values));
    if (Status status = insert.execute(); !status) return status;
  }
  return touch_worker(held->worker_id, now);
}

Status SqliteStore::Impl::attach_model(const std::string& trial_id, const std::string& lease_token,
                                       const ModelInfo& model, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  Status status = statement("UPDATE trials SET model_sha256 = ?2, model_size = ?3 WHERE id = ?1")
                      .bind(1, trial_id)
                      .bind(2, model.sha256)
                      .bind(3, model.size_bytes)
                      .execute();
  if (!status) return status;
  return touch_worker(held->worker_id, now);
}

Result<std::string> SqliteStore::Impl::complete(const std::string& trial_id,
                                                const std::string& lease_token,
                                                const nlohmann::json& results,
                                                const TrialMeasurements& measurements, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  Status status = statement(
                      "UPDATE trials SET state = 'done', results = ?2, finished_ms = ?3, "
                      "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
                      .bind(1, trial_id)
                      .bind(2, dump_json(results))
                      .bind(3, now)
                      .execute();
  if (!status) return status;
  status = record_measurements(trial_id, measurements);
  if (!status) return status;
  // Cancelled while it ran: its results stay (they may be partial), the trial is cancelled.
  const bool cancelled = held->stop_requested;
  status = cancelled ? end_cancelled(trial_id, "cancelled by the user", now)
                     : add_done_duration(trial_id, now);
  if (status && !cancelled) status = drop_checkpoint(trial_id);
  if (!status) return status;
  status = finish_lease(trial_id, *held, cancelled ? "cancelled" : "done", std::nullopt, now);
  if (!status) return status;
  return held->worker_id;
}

// Counts the trial, done at `now`, in its experiment's mean duration.
Status SqliteStore::Impl::add_done_duration(const std::string& trial_id, TimeMs now) {
  return statement(
             "UPDATE experiments SET done_count = done_count + 1, "
             "done_ms_total = done_ms_total + ?2 - (SELECT started_ms FROM trials "
             "WHERE id = ?1) WHERE name = (SELECT experiment FROM trials WHERE "
             "id = ?1)")
      .bind(1, trial_id)
      .bind(2, now)
      .execute();
}

// Without a peak nothing is written: the columns stay NULL (only a completion or failure sets
// them, a retry clears the trial's), and a database kept below schema version 6 still works.
Status SqliteStore::Impl::record_measurements(const std::string& trial_id,
                                              const TrialMeasurements& measurements) {
  if (!measurements.peak_gpu_memory_bytes) return Status::ok();
  Status status = statement("UPDATE trials SET peak_gpu_memory_bytes = ?2 WHERE id = ?1")
                      .bind(1, trial_id)
                      .bind(2, *measurements.peak_gpu_memory_bytes)
                      .execute();
  if (!status) return status;
  return statement(
             "UPDATE trial_attempts SET peak_gpu_memory_bytes = ?2 "
             "WHERE id = (SELECT last_attempt_id FROM trials WHERE id = ?1)")
      .bind(1, trial_id)
      .bind(2, *measurements.peak_gpu_memory_bytes)
      .execute();
}

Status SqliteStore::Impl::fail(const std::string& trial_id, const std::string& lease_token,
                               const std::string& error, const std::string& traceback,
                               const TrialMeasurements& measurements, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  Status status = statement(
                      "UPDATE trials SET state = 'failed', error = ?2, traceback = ?3, "
                      "finished_ms = ?4, lease_token = NULL, lease_expires_ms = NULL "
                      "WHERE id = ?1")
                      .bind(1, trial_id)
                      .bind(2, error)
                      .bind(3, traceback)
                      .bind(4, now)
                      .execute();
  if (!status) return status;
  status = record_measurements(trial_id, measurements);
  if (!status) return status;
  if (held->stop_requested) {
    status = end_cancelled(trial_id, "cancelled by the user; the trial ended with: " + error, now);
    if (!status) return status;
    return finish_lease(trial_id, *held, "cancelled", error, now);
  }
  return finish_lease(trial_id, *held, "failed", error, now);
}

Result<TrialState> SqliteStore::Impl::hand_back(const std::string& trial_id,
                                                const std::string& lease_token,
                                                std::string_view outcome,
                                                const std::optional<std::string>& reason,
                                                TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  if (held->stop_requested) {
    Status status = end_cancelled(trial_id, "cancelled by the user", now);
    if (status) status = finish_lease(trial_id, *held, "cancelled", reason, now);
    if (!status) return status;
    return TrialState::kCancelled;
  }
  Status status = statement(
                      "UPDATE trials SET state = 'pending', attempts = attempts - 1, "
                      "lease_token = NULL, lease_expires_ms = NULL, worker_id = NULL, "
                      "started_ms = NULL WHERE id = ?1")
                      .bind(1, trial_id)
                      .execute();
  if (status) status = finish_lease(trial_id, *held, outcome, reason, now);
  if (!status) return status;
  return TrialState::kPending;
}

Result<SqliteStore::Impl::HeldLease> SqliteStore::Impl::hold_lease(const std::string& trial_id,
                                                                   const std::string& lease_token,
                                                                   TimeMs now) {
  std::string state;
  {
    Statement trial = statement(
        "SELECT state, lease_token, lease_expires_ms, worker_id, attempts, stop_requested "
        "FROM trials WHERE id = ?1");
    trial.bind(1, trial_id);
    Result<bool> found = trial.next_row();
    if (!found) return found.status();
    if (!*found) return Status::not_found("no trial " + trial_id);
    state = trial.text(0);
    std::optional<std::string> current_token = trial.optional_text(1);
    if (state == "running" && current_token && constant_time_equals(*current_token, lease_token)) {
      TimeMs expires_ms = trial.integer(2);
      if (now < expires_ms) {
        return HeldLease{trial.text(3), trial.integer(4), trial.integer(5) != 0};
      }
      return Status::conflict("trial " + trial_id + ": lease expired " +
                              std::to_string(now - expires_ms) + " ms ago");
    }
  }
  return lease_conflict(trial_id, state, lease_token);
}

// Why `lease_token` no longer holds a trial in `state`, from the attempt history.
Status SqliteStore::Impl::lease_conflict(const std::string& trial_id, const std::string& state,
                                         const std::string& lease_token) {
  std::string prefix = "trial " + trial_id + ": ";
  if (state == "done") return Status::conflict(prefix + "trial is already done");
  if (state == "failed") return Status::conflict(prefix + "trial has already failed");
  if (state == "cancelled") return Status::conflict(prefix + "trial was cancelled");
  Statement past = statement(std::string(kAttemptChain) +
                             "SELECT a.outcome FROM trial_attempts a JOIN chain c ON a.id = c.id "
                             "WHERE a.lease_token = ?2");
  past.bind(1, trial_id).bind(2, lease_token);
  Result<bool> found = past.next_row();
  if (!found) return found.status();
  if (!*found) {
    return Status::conflict(prefix + "lease token does not match the trial's lease (trial is " +
                            state + ")");
  }
  std::string outcome = past.text(0);
  std::string reason = outcome == "released"    ? "lease was released"
                       : outcome == "preempted" ? "lease was handed back (the worker was stopped)"
                       : outcome == "lost"      ? "the worker lost the trial's executor"
                                                : "lease expired";
  if (state == "running") reason += "; the trial was re-leased to another worker";
  return Status::conflict(prefix + reason);
}

// Closes the history row of the trial's live lease.
Status SqliteStore::Impl::end_attempt(const std::string& trial_id, std::string_view outcome,
                                      const std::optional<std::string>& error, TimeMs now) {
  Statement ended = statement(
      "UPDATE trial_attempts SET ended_ms = ?2, outcome = ?3, error = ?4 "
      "WHERE id = (SELECT last_attempt_id FROM trials WHERE id = ?1) AND outcome = 'running'");
  ended.bind(1, trial_id).bind(2, now).bind(3, outcome);
  return bind_optional(ended, 4, error).execute();
}

// Ends a running trial whose cancel was requested: cancelled, lease dropped, any results
// and model the worker sent kept.
Status SqliteStore::Impl::end_cancelled(const std::string& trial_id, const std::string& reason,
                                        TimeMs now) {
  return statement(
             "UPDATE trials SET state = 'cancelled', error = ?2, finished_ms = ?3, "
             "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
      .bind(1, trial_id)
      .bind(2, reason)
      .bind(3, now)
      .execute();
}

// The worker gave up its lease on the trial (already moved to its next state): the attempt
// closed with `outcome`, the worker freed and its done or failed count moved.
Status SqliteStore::Impl::finish_lease(const std::string& trial_id, const HeldLease& held,
                                       std::string_view outcome,
                                       const std::optional<std::string>& error, TimeMs now) {
  Status status = end_attempt(trial_id, outcome, error, now);
  if (!status) return status;
  return worker_lease_ended(held.worker_id, trial_id, now, /*done=*/outcome == "done" ? 1 : 0,
                            /*failed=*/outcome == "failed" ? 1 : 0);
}

Status SqliteStore::Impl::touch_worker(const std::string& worker_id, TimeMs now) {
  return statement("UPDATE workers SET last_seen_ms = ?2 WHERE id = ?1")
      .bind(1, worker_id)
      .bind(2, now)
      .execute();
}

// The worker ended its lease on `trial_id`: no longer its current trial; counted.
Status SqliteStore::Impl::worker_lease_ended(const std::string& worker_id,
                                             const std::string& trial_id, TimeMs now, int done,
                                             int failed) {
  return statement(
             "UPDATE workers SET last_seen_ms = ?2, current_trial = NULLIF(current_trial, ?3), "
             "trials_done = trials_done + ?4, trials_failed = trials_failed + ?5 "
             "WHERE id = ?1")
      .bind(1, worker_id)
      .bind(2, now)
      .bind(3, trial_id)
      .bind(4, done)
      .bind(5, failed)
      .execute();
}

Result<std::int64_t> SqliteStore::Impl::requeue_expired(TimeMs now) {
  Result<std::vector<ExpiredLease>> expired = expired_leases(now);
  if (!expired) return expired.status();
  for (const ExpiredLease& lease : *expired) {
    if (Status requeued = requeue(lease, now); !requeued) return requeued;
  }
  return static_cast<std::int64_t>(expired->size());
}

// Collected before any is requeued: requeueing changes the index this query walks.
Result<std::vector<SqliteStore::Impl::ExpiredLease>> SqliteStore::Impl::expired_leases(TimeMs now) {
  Statement query = statement(
      "SELECT t.id, t.attempts, t.worker_id, coalesce(w.host, '?'), t.stop_requested "
      "FROM trials t "
      "LEFT JOIN workers w ON w.id = t.worker_id "
      "WHERE t.state = 'running' AND t.lease_expires_ms <= ?1");
  query.bind(1, now);
  std::vector<ExpiredLease> expired;
  Status read = query.each_row([&] {
    expired.push_back(
        {query.text(0), query.integer(1), query.text(2), query.text(3), query.integer(4) != 0});
  });
  if (!read) return read;
  return expired;
}

// Ends the expired lease: the trial pending again, or failed once it has used up its
// attempts, or cancelled if that was asked for; its worker no longer on it.
Status SqliteStore::Impl::requeue(const ExpiredLease& expired, TimeMs now) {
  std::string_view outcome = "expired";
  if (expired.stop_requested) {
    outcome = "cancelled";
    Status moved =
        end_cancelled(expired.trial_id, "cancelled by the user (the worker's lease ran out)", now);
    if (!moved) return moved;
  } else {
    std::string error = "lease expired " + std::to_string(expired.attempts) +
                        " times (last worker " + expired.worker_id + " on " + expired.host +
                        "); giving up after --max-attempts=" + std::to_string(options.max_attempts);
    Result<TrialState> moved = requeue_or_give_up(expired.trial_id, expired.attempts, error, now);
    if (!moved) return moved.status();
  }
  if (Status ended = end_attempt(expired.trial_id, outcome, std::nullopt, now); !ended) {
    return ended;
  }
  return statement("UPDATE workers SET current_trial = NULL WHERE id = ?1 AND current_trial = ?2")
      .bind(1, expired.worker_id)
      .bind(2, expired.trial_id)
      .execute();
}

Result<TrialState> SqliteStore::Impl::requeue_or_give_up(const std::string& trial_id,
                                                         std::int64_t attempts,
                                                         const std::string& give_up_error,
                                                         TimeMs now) {
  if (attempts >= options.max_attempts) {
    Status failed = statement(
                        "UPDATE trials SET state = 'failed', error = ?2, finished_ms = ?3, "
                        "lease_token = NULL, lease_expires_ms = NULL WHERE id = ?1")
                        .bind(1, trial_id)
                        .bind(2, give_up_error)
                        .bind(3, now)
                        .execute();
    if (!failed) return failed;
    return TrialState::kFailed;
  }
  Status pending = statement(
                       "UPDATE trials SET state = 'pending', lease_token = NULL, "
                       "lease_expires_ms = NULL, worker_id = NULL, started_ms = NULL WHERE id = ?1")
                       .bind(1, trial_id)
                       .execute();
  if (!pending) return pending;
  return TrialState::kPending;
}

Result<TrialState> SqliteStore::Impl::requeue_lost(const std::string& trial_id,
                                                   const std::string& lease_token,
                                                   const std::string& reason, TimeMs now) {
  Result<HeldLease> held = hold_lease(trial_id, lease_token, now);
  if (!held) return held.status();
  if (held->stop_requested) {
    Status status = end_cancelled(trial_id, "cancelled by the user", now);
    if (!status) return status;
    status = finish_lease(trial_id, *held, "cancelled", reason, now);
    if (!status) return status;
    return TrialState::kCancelled;
  }
  std::string error = reason + " (attempt " + std::to_string(held->attempt) +
                      "); giving up after --max-attempts=" + std::to_string(options.max_attempts);
  Result<TrialState> state = requeue_or_give_up(trial_id, held->attempt, error, now);
  if (!state) return state;
  Status ended = end_attempt(trial_id, "lost", reason, now);
  if (!ended) return ended;
  ended = worker_lease_ended(held->worker_id, trial_id, now, /*done=*/0,
                             /*failed=*/*state == TrialState::kFailed ? 1 : 0);
  if (!ended) return ended;
  return state;
}

}  // namespace gridexp
