#include "worker/supervisor.h"

#include <unistd.h>

#include <thread>
#include <utility>

#include "common/random.h"
#include "common/sha256.h"
#include "common/url.h"
#include "common/version.h"
#include "worker/devices.h"
#include "worker/downloads.h"
#include "worker/orphans.h"

namespace gridexp {

struct Supervisor::Outcome {
  bool succeeded = false;
  nlohmann::json results;
  std::string error;
  std::string traceback;
  std::optional<std::filesystem::path> model_path;
  bool cancelled = false;  // a user cancelled it while it ran (the server ends it cancelled)
};

namespace {

constexpr std::chrono::milliseconds kEventPoll{100};
constexpr std::chrono::milliseconds kInterruptGrace{3000};
constexpr std::chrono::seconds kStopGrace{30};
constexpr std::chrono::milliseconds kOutputDrain{500};
constexpr std::chrono::milliseconds kOrphanKillWait{2000};

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

// The string at `key`, or `fallback` when it is missing, null or not a string.
std::string string_or(const nlohmann::json& object, const char* key, const std::string& fallback) {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : fallback;
}

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

std::string trial_path(const std::string& trial_id, const char* action) {
  return "/api/v1/trials/" + encode_path_segment(trial_id) + "/" + action;
}

}  // namespace

Supervisor::Supervisor(SupervisorSetup setup, Progress& progress,
                       const std::atomic<bool>& interrupted)
    : setup_(std::move(setup)),
      base_url_(server_base_url(setup_.options.address).value()),
      progress_(progress),
      interrupted_(interrupted),
      fs_(default_file_system()),
      state_dir_(setup_.options.workdir / ".gridexp-worker"),
      model_dir_(state_dir_ / "models"),
      connection_(base_url_, setup_.password),
      outbox_(state_dir_ / "outbox", fs_) {
  retry_.sleep = [this](std::chrono::milliseconds delay) { return keep_waiting(delay); };
  retry_.on_retry = [this](const Status& status, std::chrono::milliseconds delay) {
    progress_.message(status.message() + "; retrying every " +
                      std::to_string(std::max<long>(1, delay.count() / 1000)) +
                      "s and up to 10s until the server answers");
  };
}

// The executor goes first: its reader threads call on_executor_output, which uses members
// declared after it.
Supervisor::~Supervisor() {
  executor_.reset();
  end_orphans(-1, kOrphanKillWait);
}

void Supervisor::end_left_behind(const std::string& trial_id) {
  int ended = end_orphans(executor_ ? executor_->pid() : -1, kOrphanKillWait);
  if (ended > 0) {
    progress_.message("ended " + std::to_string(ended) + " process" + (ended == 1 ? "" : "es") +
                      (trial_id.empty() ? " the executor" : " trial " + trial_id) +
                      " left running (started with setsid or a double fork)");
  }
}

Status Supervisor::check_experiment_py() const {
  std::error_code error;
  if (std::filesystem::is_regular_file(setup_.options.workdir / "experiment.py", error)) {
    return Status::ok();
  }
  std::string where = setup_.options.workdir.string();
  if (setup_.options.download_scripts) {
    return Status::invalid_argument("experiment.py not found in " + where +
                                    ": the server's scripts.zip has none; put experiment.py in "
                                    "the server's experiment directory");
  }
  return Status::invalid_argument("experiment.py not found in " + where +
                                  ": start the worker with --download_scripts, or copy "
                                  "experiment.py there");
}

bool Supervisor::keep_waiting(std::chrono::milliseconds delay) {
  auto deadline = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < deadline) {
    if (interrupted_) return false;
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        kEventPoll, std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())));
  }
  return !interrupted_;
}

int Supervisor::fail_with(int exit_status, const std::string& reason) {
  progress_.message("error: " + reason);
  return exit_status;
}

Result<nlohmann::json> Supervisor::call(const std::function<Result<nlohmann::json>()>& request) {
  return call_with_retry(request, retry_);
}

Status Supervisor::prepare_workdir() {
  for (const std::filesystem::path& directory : {setup_.options.workdir, state_dir_, model_dir_}) {
    if (Status status = fs_.create_directories(directory); !status) return status;
  }
  Result<std::unique_ptr<WorkdirLock>> lock = WorkdirLock::acquire(state_dir_);
  if (!lock) return lock.status();
  workdir_lock_ = std::move(lock).value();
  return outbox_.prepare();
}

Status Supervisor::fetch_archives() {
  Downloader downloader(base_url_, setup_.password, state_dir_ / "cache", retry_);
  struct Wanted {
    const char* name;
    bool wanted;
    bool required;
  };
  for (const Wanted& archive : {Wanted{"scripts.zip", setup_.options.download_scripts, true},
                                Wanted{"data.zip", setup_.options.download_data, false}}) {
    if (!archive.wanted) continue;
    Result<bool> changed = fetch_and_extract(downloader, archive.name, setup_.options.workdir,
                                             state_dir_, ExtractLimits{}, fs_);
    if (!changed) {
      if (changed.status().code() == Code::kNotFound && !archive.required) {
        progress_.message(std::string("the server has no ") + archive.name +
                          "; going on without it");
        continue;
      }
      return Status(changed.status().code(),
                    std::string(archive.name) + " from the server: " + changed.status().message());
    }
    progress_.message(std::string(archive.name) +
                      (*changed ? " downloaded and unpacked" : " is up to date"));
  }
  return Status::ok();
}

void Supervisor::on_executor_output(const std::string& line, bool /*is_stderr*/) {
  std::lock_guard lock(output_mutex_);
  if (output_heartbeat_ != nullptr) output_heartbeat_->push_log_line(line);
  progress_.output_line(output_trial_id_, line);
}

Status Supervisor::start_executor() {
  ExecutorLaunch launch;
  launch.executable = setup_.executor_path;
  launch.workdir = setup_.options.workdir;
  launch.on_output = [this](const std::string& line, bool is_stderr) {
    on_executor_output(line, is_stderr);
  };
  Result<std::unique_ptr<ExecutorProcess>> spawned = ExecutorProcess::spawn(launch);
  if (!spawned) return spawned.status();
  executor_ = std::move(spawned).value();
  Status sent = executor_->send({{"type", "start"},
                                 {"config", config_},
                                 {"consistent_dataset", setup_.options.consistent_dataset},
                                 {"save_models", setup_.options.save_models},
                                 {"model_dir", std::filesystem::absolute(model_dir_).string()}});
  while (true) {
    if (interrupted_) {
      executor_->interrupt_then_kill(kInterruptGrace);
      executor_.reset();
      return Status::unavailable("interrupted while experiment.py was starting");
    }
    std::optional<nlohmann::json> event = executor_->next_event(kEventPoll);
    if (event) {
      std::string type = string_or(*event, "type", "");
      if (type == "ready") return Status::ok();
      if (type == "fatal") {
        std::string where;
        if ((*event)["file"].is_string()) {
          where = (*event)["file"].get<std::string>();
          if ((*event)["line"].is_number()) where += ":" + (*event)["line"].dump();
          where += ": ";
        }
        std::string traceback = string_or(*event, "traceback", "");
        if (!traceback.empty()) progress_.output_line("", traceback);
        executor_.reset();
        return Status::invalid_argument(where + string_or(*event, "error", "experiment.py failed"));
      }
      continue;
    }
    if (executor_->has_exited()) {
      std::string cause = executor_->exit_description();
      executor_.reset();
      return Status::io_error("the executor " + cause + " while starting experiment.py" +
                              (sent ? "" : " (" + sent.message() + ")"));
    }
  }
}

Status Supervisor::deliver(FinishedTrial& finished, TrialHeartbeat* heartbeat,
                           bool* ended_cancelled, const std::string& next_claim_id,
                           std::optional<nlohmann::json>* next_claim) {
  auto forget = [&] {
    ignore_outcome(outbox_.remove(finished.trial_id));
    if (finished.model_path) ignore_outcome(fs_.remove(*finished.model_path));
  };
  if (finished.model_path) {
    Result<std::string> sha = sha256_file_hex(*finished.model_path);
    if (!sha) return sha.status();
    Result<nlohmann::json> uploaded = call([&] {
      return connection_.put_file(
          trial_path(finished.trial_id, "model"), *finished.model_path,
          {{"X-Gridexp-Lease-Token", finished.lease_token}, {"X-Gridexp-Sha256", *sha}});
    });
    if (!uploaded) {
      Code code = uploaded.status().code();
      if (code == Code::kConflict || code == Code::kNotFound) {
        forget();
        return uploaded.status();
      }
      if (code != Code::kTooLarge) return uploaded.status();
      finished.succeeded = false;
      finished.error = "the model file is larger than the server accepts (--max-upload-mb): " +
                       uploaded.status().message();
      finished.traceback.clear();
    }
  }
  // The last metrics and log lines go while the lease is still held.
  if (heartbeat != nullptr) heartbeat->flush_and_stop();
  auto post = [&](const char* action, const std::string& text) {
    return call(
        [&] { return connection_.post_json_text(trial_path(finished.trial_id, action), text); });
  };
  std::optional<Result<nlohmann::json>> answered;
  if (finished.succeeded) {
    nlohmann::json body = {{"lease_token", finished.lease_token},
                           {"results", std::move(finished.results)}};
    if (!next_claim_id.empty()) body["next_claim_id"] = next_claim_id;
    std::string text = dump_json(body);
    finished.results = std::move(body["results"]);
    // Results over the server's body limit fail the trial at once: sending them again (or
    // running the trial again) cannot help.
    if (text.size() <= kMaxJsonBodyBytes) answered = post("complete", text);
    if (!answered || answered->status().code() == Code::kTooLarge) {
      finished.succeeded = false;
      finished.error = results_too_large_message(
          text.size(), answered ? answered->status().message() : std::string());
      finished.traceback.clear();
      answered.reset();
    }
  }
  if (!finished.succeeded) {
    answered = post("fail", dump_json({{"lease_token", finished.lease_token},
                                       {"error", finished.error},
                                       {"traceback", finished.traceback}}));
  }
  const Result<nlohmann::json>& answer = *answered;
  if (answer || answer.status().code() == Code::kConflict ||
      answer.status().code() == Code::kNotFound) {
    forget();
  }
  if (answer && ended_cancelled != nullptr) {
    *ended_cancelled = answer->is_object() && answer->value("state", "") == "cancelled";
  }
  if (answer && next_claim != nullptr && answer->is_object() && answer->contains("next")) {
    *next_claim = (*answer)["next"];
  }
  return answer ? Status::ok() : answer.status();
}

Status Supervisor::deliver_outbox() {
  Result<std::vector<FinishedTrial>> kept = outbox_.pending();
  if (!kept) return kept.status();
  for (FinishedTrial& finished : *kept) {
    Status status = deliver(finished, nullptr);
    progress_.message("delivered the kept outcome of trial " + finished.trial_id +
                      (status ? "" : ": " + status.message()));
  }
  return Status::ok();
}

Supervisor::TrialEnd Supervisor::run_trial(const nlohmann::json& trial, TrialHeartbeat* heartbeat,
                                           Outcome* outcome) {
  std::string trial_id = trial["id"].get<std::string>();
  auto stop_routing_output = [this] {
    std::lock_guard lock(output_mutex_);
    output_trial_id_.clear();
    output_heartbeat_ = nullptr;
  };
  {
    // Before the run command: the trial's first printed line may arrive before send() returns.
    std::lock_guard lock(output_mutex_);
    output_trial_id_ = trial_id;
    output_heartbeat_ = heartbeat;
  }
  if (Status sent = executor_->send({{"type", "run"}, {"trial", trial}}); !sent) {
    // The trial never reached the executor: it is not the trial's fault.
    stop_routing_output();
    progress_.message("the executor is gone (" + sent.message() + "); starting a new one");
    executor_.reset();
    return TrialEnd::kNotStarted;
  }
  progress_.trial_started(trial_id, trial.value("attempt", 1), trial["hyperparameters"]);
  bool stop_sent = false;
  auto stop_sent_at = std::chrono::steady_clock::now();
  std::string fatal_reason;
  TrialEnd end = TrialEnd::kDelivered;
  while (true) {
    // Events first: a result that has arrived is delivered, even when interrupted.
    std::optional<nlohmann::json> event =
        executor_->next_event(interrupted_ ? std::chrono::milliseconds(0) : kEventPoll);
    if (event) {
      std::string type = string_or(*event, "type", "");
      if (type == "metrics") {
        nlohmann::json point = {{"step", (*event)["step"]},
                                {"time_ms", (*event)["time_ms"]},
                                {"values", (*event)["values"]}};
        if (heartbeat) heartbeat->push_metrics(point);
        progress_.metrics((*event)["values"], (*event)["step"]);
      } else if ((type == "result" || type == "failed") &&
                 string_or(*event, "trial_id", "") == trial_id) {
        outcome->succeeded = type == "result";
        if (outcome->succeeded) {
          outcome->results = (*event)["results"];
          if ((*event)["model_path"].is_string()) {
            outcome->model_path = (*event)["model_path"].get<std::string>();
          }
        } else {
          outcome->error = string_or(*event, "error", "run_one failed");
          outcome->traceback = string_or(*event, "traceback", "");
        }
        break;
      } else if (type == "fatal") {
        fatal_reason = string_or(*event, "error", "");
      } else if (type == "protocol_error") {
        progress_.message("unexpected line from the executor: " + string_or(*event, "line", ""));
      }
      continue;
    }
    if (interrupted_) {
      executor_->interrupt_then_kill(kInterruptGrace);
      executor_.reset();
      end = TrialEnd::kInterrupted;
      break;
    }
    if (executor_->has_exited()) {
      outcome->succeeded = false;
      outcome->error = "the executor running experiment.py " + executor_->exit_description();
      if (!fatal_reason.empty()) outcome->error += ": " + fatal_reason;
      executor_.reset();
      break;
    }
    bool lease_lost = heartbeat && heartbeat->lease_lost();
    bool cancelled = heartbeat && heartbeat->stop_requested();
    if (heartbeat && !stop_sent && (lease_lost || cancelled)) {
      // A dead executor is seen by the next wait; the kill after the grace covers it.
      ignore_outcome(executor_->send({{"type", "stop"}, {"trial_id", trial_id}}));
      stop_sent = true;
      stop_sent_at = std::chrono::steady_clock::now();
      if (cancelled) progress_.message("trial " + trial_id + " was cancelled; asking it to stop");
    }
    bool grace_over = stop_sent && std::chrono::steady_clock::now() - stop_sent_at > kStopGrace;
    if (lease_lost && grace_over) {
      executor_->kill_now();
      executor_.reset();
      end = TrialEnd::kLeaseLost;
      break;
    }
    if (cancelled && grace_over) {
      executor_->kill_now();
      executor_.reset();
      outcome->succeeded = false;
      outcome->error = "cancelled; run_one did not stop within " +
                       std::to_string(kStopGrace.count()) +
                       " s (it can poll "
                       "gridexp.should_stop()), so its executor was killed";
      break;
    }
  }
  outcome->cancelled = heartbeat && heartbeat->stop_requested();
  // Lines printed just before the result still belong to this trial's log.
  if (executor_) executor_->drain_output(kOutputDrain);
  stop_routing_output();
  end_left_behind(trial_id);
  if (end == TrialEnd::kInterrupted) return end;
  if (end == TrialEnd::kLeaseLost || (heartbeat && heartbeat->lease_lost())) {
    if (outcome->model_path) ignore_outcome(fs_.remove(*outcome->model_path));
    progress_.message("lost the lease on trial " + trial_id +
                      " (it expired or was taken back); another worker completes it");
    return TrialEnd::kLeaseLost;
  }
  return outcome->succeeded ? TrialEnd::kDelivered : TrialEnd::kFailedDelivered;
}

int Supervisor::run_dry() {
  Result<nlohmann::json> config = call([&] { return connection_.get_json("/api/v1/config"); });
  if (!config) return fail_with(kWorkerExitFailed, config.status().message());
  config_ = (*config)["config"];
  std::string experiment = (*config)["experiment_name"].get<std::string>();
  Result<nlohmann::json> trials = call([&] {
    return connection_.get_json("/api/v1/experiments/" + encode_path_segment(experiment) +
                                "/trials");
  });
  if (!trials) return fail_with(kWorkerExitFailed, trials.status().message());
  if (Status status = fetch_archives(); !status)
    return fail_with(kWorkerExitBadSetup, status.message());
  if (Status status = check_experiment_py(); !status)
    return fail_with(kWorkerExitBadSetup, status.message());
  if (Status status = start_executor(); !status) {
    return fail_with(interrupted_ ? kWorkerExitInterrupted : kWorkerExitBadSetup, status.message());
  }
  progress_.message("dry run: running the pending trials of " + experiment +
                    " here; nothing is written to the server");
  std::int64_t ran = 0;
  for (const nlohmann::json& trial : *trials) {
    if (trial["state"] != "pending" || !trial.value("in_config", true)) continue;
    if (setup_.options.max_trials && ran >= *setup_.options.max_trials) break;
    if (!executor_) {
      if (Status status = start_executor(); !status)
        return fail_with(kWorkerExitFailed, status.message());
    }
    nlohmann::json job = {{"id", trial["id"]},
                          {"attempt", 1},
                          {"experiment", experiment},
                          {"hyperparameters", trial["hyperparameters"]}};
    Outcome outcome;
    TrialEnd end = run_trial(job, nullptr, &outcome);
    if (end == TrialEnd::kNotStarted) {
      if (Status status = start_executor(); !status)
        return fail_with(kWorkerExitFailed, status.message());
      end = run_trial(job, nullptr, &outcome);
    }
    if (end == TrialEnd::kInterrupted) return fail_with(kWorkerExitInterrupted, "interrupted");
    if (end == TrialEnd::kNotStarted)
      return fail_with(kWorkerExitFailed, "the executor keeps dying");
    ++ran;
    progress_.trial_finished(job["id"], outcome.succeeded,
                             outcome.succeeded ? outcome.results.dump() : outcome.error);
    if (!outcome.succeeded && setup_.options.raise_on_failure) {
      return fail_with(kWorkerExitFailed,
                       "trial " + job["id"].get<std::string>() + " failed: " + outcome.error);
    }
  }
  progress_.message("dry run finished: " + std::to_string(ran) + " trials");
  return kWorkerExitOk;
}

int Supervisor::run() {
  if (Status status = prepare_workdir(); !status)
    return fail_with(kWorkerExitBadSetup, status.message());
  // What the user's code starts and abandons comes back to us, to be ended with its trial.
  if (Status status = become_child_subreaper(); !status) {
    progress_.message("warning: processes a trial leaves running are not ended (" +
                      status.message() + ")");
  }
  if (setup_.options.dry_run) return run_dry();

  nlohmann::json about = {{"host", host_name()},
                          {"pid", static_cast<std::int64_t>(::getpid())},
                          {"version", kVersion},
                          {"devices", detect_devices()}};
  Result<nlohmann::json> registered =
      call([&] { return connection_.post_json("/api/v1/workers", about); });
  if (!registered) {
    if (interrupted_) return fail_with(kWorkerExitInterrupted, "interrupted");
    return fail_with(
        registered.status().code() == Code::kUnauthorized ? kWorkerExitBadSetup : kWorkerExitFailed,
        registered.status().message());
  }
  worker_id_ = (*registered)["worker_id"].get<std::string>();
  config_ = (*registered)["config"];
  heartbeat_interval_ = std::chrono::milliseconds(
      static_cast<std::int64_t>(registered->value("heartbeat_seconds", 10)) * 1000);
  progress_.message("worker " + worker_id_ + " registered with " + base_url_ + " for " +
                    string_or(*registered, "experiment_name", "?"));

  if (Status status = fetch_archives(); !status) {
    return fail_with(interrupted_ ? kWorkerExitInterrupted : kWorkerExitBadSetup, status.message());
  }
  if (Status status = deliver_outbox(); !status)
    return fail_with(kWorkerExitFailed, status.message());
  // Before the executor, which would only say that the file is missing, not what to do.
  if (Status status = check_experiment_py(); !status)
    return fail_with(kWorkerExitBadSetup, status.message());

  std::int64_t trials_run = 0;
  // Each claim has an id, sent again with its retries, so a claim whose answer was lost gets
  // its lease again instead of a second one (docs/protocol.md, "Claim"). A completion claims
  // the next trial with the next id; when its answer does not bring that claim's answer, the
  // loop sends the claim itself, with the same id.
  std::string claim_id = random_hex(16);
  const std::string claim_path = "/api/v1/workers/" + encode_path_segment(worker_id_) + "/claim";
  std::optional<nlohmann::json> next_claim;  // the claim answer a completion brought
  auto give_back_next_claim = [&] {
    if (!next_claim || !(*next_claim)["trial"].is_object()) return;
    const nlohmann::json& unstarted = (*next_claim)["trial"];
    // A courtesy: a release that fails leaves the lease to expire on the server.
    ignore_outcome(connection_.post_json(trial_path(unstarted["id"].get<std::string>(), "release"),
                                         {{"lease_token", unstarted["lease_token"]}}));
    next_claim.reset();
  };
  auto exit_interrupted = [&] {
    give_back_next_claim();
    return fail_with(kWorkerExitInterrupted, "interrupted");
  };
  while (true) {
    if (interrupted_) return exit_interrupted();
    if (setup_.options.max_trials && trials_run >= *setup_.options.max_trials) {
      progress_.message("ran " + std::to_string(trials_run) + " trials (--max_trials); stopping");
      return kWorkerExitOk;
    }
    if (executor_ && executor_->has_exited()) {
      progress_.message("the idle executor " + executor_->exit_description() +
                        "; starting a new one");
      executor_.reset();
    }
    if (!executor_) {
      if (Status status = start_executor(); !status) {
        give_back_next_claim();
        return fail_with(interrupted_ ? kWorkerExitInterrupted : kWorkerExitBadSetup,
                         status.message());
      }
    }
    auto next_or_claim = [&]() -> Result<nlohmann::json> {
      if (next_claim) return *std::exchange(next_claim, std::nullopt);
      const nlohmann::json claim = {{"claim_id", claim_id}};
      return call([&] { return connection_.post_json(claim_path, claim); });
    };
    Result<nlohmann::json> claimed = next_or_claim();
    if (!claimed) {
      if (interrupted_) return exit_interrupted();
      return fail_with(kWorkerExitFailed, claimed.status().message());
    }
    claim_id = random_hex(16);
    std::int64_t pending = claimed->value("pending", 0);
    std::int64_t running = claimed->value("running", 0);
    if (claimed->contains("done") && claimed->contains("total")) {
      progress_.set_totals((*claimed)["done"].get<std::int64_t>(),
                           (*claimed)["total"].get<std::int64_t>());
    }
    const nlohmann::json& trial = (*claimed)["trial"];
    if (trial.is_null()) {
      if (pending == 0 && running == 0) {
        progress_.message("no trial is left to run: the grid is finished");
        return kWorkerExitOk;
      }
      progress_.idle("waiting: " + std::to_string(running) + " trials run on other workers");
      if (!keep_waiting(std::chrono::milliseconds(
              static_cast<std::int64_t>(setup_.options.poll_seconds * 1000)))) {
        return fail_with(kWorkerExitInterrupted, "interrupted");
      }
      continue;
    }
    std::string trial_id = trial["id"].get<std::string>();
    std::string lease_token = trial["lease_token"].get<std::string>();
    if (trial.value("resumed", false)) {
      progress_.message("the answer to the claim of trial " + trial_id +
                        " was lost on the way; the server handed the same lease again");
    }
    nlohmann::json job = {{"id", trial_id},
                          {"attempt", trial["attempt"]},
                          {"experiment", trial["experiment"]},
                          {"hyperparameters", trial["hyperparameters"]}};
    Outcome outcome;
    TrialHeartbeat heartbeat(base_url_, setup_.password, trial_id, lease_token, heartbeat_interval_,
                             state_dir_);
    TrialEnd end = run_trial(job, &heartbeat, &outcome);
    ++trials_run;
    if (end == TrialEnd::kNotStarted) {
      heartbeat.flush_and_stop();
      // A release that fails leaves the lease to expire on the server.
      ignore_outcome(call([&] {
        return connection_.post_json(trial_path(trial_id, "release"),
                                     {{"lease_token", lease_token}});
      }));
      --trials_run;
      continue;
    }
    if (end == TrialEnd::kInterrupted) {
      heartbeat.flush_and_stop();
      Result<nlohmann::json> released =
          connection_.post_json(trial_path(trial_id, "release"), {{"lease_token", lease_token}});
      return fail_with(kWorkerExitInterrupted,
                       "interrupted; trial " + trial_id +
                           (released ? " released back to pending"
                                     : " not released (" + released.status().message() +
                                           "): it returns to pending when its lease expires"));
    }
    if (end == TrialEnd::kLeaseLost) {
      heartbeat.flush_and_stop();
      continue;
    }
    FinishedTrial finished{
        trial_id,      lease_token,       outcome.succeeded, std::move(outcome.results),
        outcome.error, outcome.traceback, outcome.model_path};
    if (Status kept = outbox_.put(finished); !kept) {
      progress_.message("cannot keep the outcome on disk (" + kept.message() + "); sending it now");
    }
    bool ended_cancelled = false;
    // A worker that goes on claims its next trial with the completion: one round trip.
    bool goes_on = !setup_.options.max_trials || trials_run < *setup_.options.max_trials;
    Status delivered = deliver(finished, &heartbeat, &ended_cancelled,
                               goes_on ? claim_id : std::string(), &next_claim);
    outcome.cancelled = outcome.cancelled || ended_cancelled;
    // Delivery may have failed the trial instead (results or model over the server's limits).
    outcome.succeeded = finished.succeeded;
    outcome.error = finished.error;
    std::string summary = outcome.succeeded ? finished.results.dump() : outcome.error;
    if (outcome.cancelled) summary = "cancelled by the user: " + summary;
    if (!delivered) summary += " (not delivered: " + delivered.message() + ")";
    progress_.trial_finished(trial_id, outcome.succeeded && delivered, summary);
    if (!delivered) ignore_outcome(deliver_outbox());  // retried at the next trial and at exit
    if (interrupted_) return exit_interrupted();
    // A cancelled trial that stopped by raising is what the user asked for, not a failure.
    if (!outcome.succeeded && !outcome.cancelled && setup_.options.raise_on_failure) {
      return fail_with(
          kWorkerExitFailed,
          "trial " + trial_id + " failed: " + outcome.error +
              " (--raise_on_failure=True stops here; --raise_on_failure=False goes on)");
    }
  }
}

}  // namespace gridexp
