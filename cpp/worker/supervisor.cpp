// Supervisor: the worker's setup, then a claim loop per executor slot (or the dry run).
#include "worker/supervisor.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <thread>
#include <utility>

#include "common/random.h"
#include "common/url.h"
#include "common/version.h"
#include "worker/downloads.h"
#include "worker/executor_process.h"
#include "worker/gpu_telemetry.h"
#include "worker/orphans.h"
#include "worker/slurm_placement.h"

namespace gridexp {
namespace {

constexpr std::chrono::milliseconds kWaitStep{100};
constexpr std::chrono::milliseconds kOrphanKillWait{2000};

// The order of gravity of the exit statuses for a worker with several slots.
int gravity(int exit_status) {
  switch (exit_status) {
    case kWorkerExitInterrupted:
      return 3;
    case kWorkerExitFailed:
      return 2;
    case kWorkerExitOk:
      return 0;
    default:
      return 1;
  }
}

// The telemetry of the GPU a slot's executor sees (every GPU when that is not a plain index);
// none for an executor that sees no GPU (--gpus none).
GpuReader gpu_reader_of(const SlotPlan& plan) {
  if (!plan.cuda_visible_devices) return gpu_reader_for(std::getenv("CUDA_VISIBLE_DEVICES"));
  if (plan.cuda_visible_devices->empty()) return {};
  return gpu_reader_for(plan.cuda_visible_devices->c_str());
}

// The one GPU a sharing slot's executor sees, as GpuShare reads it; nullopt when NVML is not
// there or does not single that GPU out (a UUID in CUDA_VISIBLE_DEVICES).
GpuShare::MemoryReader gpu_memory_reader_of(const SlotPlan& plan) {
  GpuReader reader = gpu_reader_of(plan);
  const bool single =
      plan.cuda_visible_devices &&
      visible_gpu_indices(*plan.cuda_visible_devices).value_or(std::vector<int>{}).size() == 1;
  if (!reader || !single) return {};
  return [reader]() -> std::optional<GpuSample> {
    std::vector<GpuSample> samples = reader();
    if (samples.size() != 1) return std::nullopt;
    return samples.front();
  };
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

}  // namespace

int combined_exit_status(const std::vector<int>& slot_exit_statuses) {
  int combined = kWorkerExitOk;
  for (int exit_status : slot_exit_statuses) {
    if (gravity(exit_status) > gravity(combined)) combined = exit_status;
  }
  return combined;
}

Supervisor::Supervisor(SupervisorSetup setup, Progress& progress,
                       const std::atomic<bool>& interrupted)
    : setup_(std::move(setup)),
      base_url_(server_base_url(setup_.options.address).value()),
      progress_(progress),
      interrupted_(interrupted),
      fs_(default_file_system()),
      state_dir_(setup_.options.workdir / ".gridexp-worker"),
      model_dir_(state_dir_ / "models"),
      server_(base_url_, setup_.password, state_dir_),
      outbox_(state_dir_ / "outbox", fs_),
      delivery_(server_, outbox_, fs_, retry_, progress_) {
  retry_.sleep = [this](std::chrono::milliseconds delay) { return keep_waiting(delay); };
  retry_.on_retry = [this](const Status& status, std::chrono::milliseconds delay) {
    progress_.message(status.message() + "; retrying every " +
                      std::to_string(std::max<long>(1, delay.count() / 1000)) +
                      "s and up to 10s until the server answers");
  };
}

Supervisor::~Supervisor() { end_orphans(-1, kOrphanKillWait); }

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
        kWaitStep, std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())));
  }
  return !interrupted_;
}

Status Supervisor::prepare_workdir() {
  for (const std::filesystem::path& directory : {setup_.options.workdir, state_dir_, model_dir_}) {
    if (Status status = fs_.create_directories(directory); !status) return status;
  }
  Result<std::unique_ptr<WorkdirLock>> lock = WorkdirLock::acquire(state_dir_);
  if (!lock) return lock.status();
  workdir_lock_ = std::move(lock).value();
  for (const SlotPlan& slot : setup_.slots) {
    for (const char* part : {"outbox", "models"}) {
      if (Status status = fs_.create_directories(slot_state_dir(slot) / part); !status) {
        return status;
      }
    }
  }
  return outbox_.prepare();
}

std::filesystem::path Supervisor::slot_state_dir(const SlotPlan& slot) const {
  return several_slots() ? state_dir_ / "slots" / std::to_string(slot.number) : state_dir_;
}

Status Supervisor::deliver_outboxes() {
  if (Status status = delivery_.deliver_outbox(); !status) return status;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_ / "slots", error)) {
    if (!std::filesystem::is_directory(entry.path() / "outbox", error)) continue;
    Outbox outbox(entry.path() / "outbox", fs_);
    Delivery delivery(server_, outbox, fs_, retry_, progress_);
    if (Status status = delivery.deliver_outbox(); !status) return status;
  }
  return Status::ok();
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

std::unique_ptr<WorkerSlot> Supervisor::make_slot(const SlotPlan& plan, ServerApi& server,
                                                  Delivery& delivery, const GpuSeat& seat,
                                                  BackgroundDelivery* uploads,
                                                  CheckpointUploads* checkpoint_uploads) {
  SlotSetup slot;
  slot.gpu_seat = seat;
  slot.uploads = uploads;
  slot.checkpoint_staging = slot_state_dir(plan) / "checkpoints";
  slot.checkpoint_uploads = checkpoint_uploads;
  slot.preempt_reason = [signal = setup_.stop_signal] {
    return signal != nullptr ? stop_signal_name(signal->load()) : std::string();
  };
  slot.stop_policy.preempt_grace =
      std::chrono::milliseconds(static_cast<std::int64_t>(setup_.options.grace_seconds * 1000));
  slot.stop_policy.kill_now = setup_.kill_now;
  slot.spawn = ExecutorProcess::spawn_channel;
  slot.launch.executable = setup_.executor_path;
  slot.launch.workdir = setup_.options.workdir;
  if (plan.cuda_visible_devices) {
    slot.launch.environment.emplace_back("CUDA_VISIBLE_DEVICES", *plan.cuda_visible_devices);
  }
  if (plan.shares_gpu) slot.launch.environment.emplace_back(kSharedGpuEnvironmentVariable, "1");
  std::string marker;
  if (several_slots()) {
    slot.launch.environment.emplace_back("GRIDEXP_SLOT", std::to_string(plan.number));
    marker = "GRIDEXP_SLOT=" + std::to_string(plan.number);
  }
  std::filesystem::path models = std::filesystem::absolute(slot_state_dir(plan) / "models");
  slot.start = StartCommand{config_, setup_.options.consistent_dataset, setup_.options.save_models,
                            models.string()};
  slot.heartbeat_interval = heartbeat_interval_;
  slot.end_orphans = [marker](pid_t keep) { return end_orphans(keep, kOrphanKillWait, marker); };
  return std::make_unique<WorkerSlot>(std::move(slot), server, delivery, retry_, progress_,
                                      interrupted_);
}

std::optional<int> Supervisor::run_dry_trial(WorkerSlot& slot, const nlohmann::json& trial,
                                             const std::string& experiment) {
  nlohmann::json job = {{"id", trial["id"]},
                        {"attempt", 1},
                        {"experiment", experiment},
                        {"hyperparameters", trial["hyperparameters"]}};
  Result<TrialRun> run = slot.run_unleased(job);
  if (!run) return fail_with(progress_, kWorkerExitFailed, run.status().message());
  if (run->end == TrialEnd::kInterrupted) {
    return fail_with(progress_, kWorkerExitInterrupted, "interrupted");
  }
  progress_.trial_finished(job["id"], run->succeeded,
                           run->succeeded ? run->results.dump() : run->error);
  if (!run->succeeded && setup_.options.raise_on_failure) {
    return fail_with(progress_, kWorkerExitFailed,
                     "trial " + job["id"].get<std::string>() + " failed: " + run->error);
  }
  return std::nullopt;
}

int Supervisor::run_dry() {
  Result<nlohmann::json> config =
      call_with_retry([&] { return server_.get_json("/api/v1/config"); }, retry_);
  if (!config) return fail_with(progress_, kWorkerExitFailed, config.status().message());
  config_ = (*config)["config"];
  std::string experiment = (*config)["experiment_name"].get<std::string>();
  Result<nlohmann::json> trials = call_with_retry(
      [&] {
        return server_.get_json("/api/v1/experiments/" + encode_path_segment(experiment) +
                                "/trials");
      },
      retry_);
  if (!trials) return fail_with(progress_, kWorkerExitFailed, trials.status().message());
  if (Status status = fetch_archives(); !status) {
    return fail_with(progress_, kWorkerExitBadSetup, status.message());
  }
  if (Status status = check_experiment_py(); !status) {
    return fail_with(progress_, kWorkerExitBadSetup, status.message());
  }
  server_.set_gpu_reader(gpu_reader_of(setup_.slots.front()));
  std::unique_ptr<WorkerSlot> slot = make_slot(setup_.slots.front(), server_, delivery_);
  if (Status status = slot->ensure_executor(); !status) {
    return fail_with(progress_, interrupted_ ? kWorkerExitInterrupted : kWorkerExitBadSetup,
                     status.message());
  }
  progress_.message("dry run: running the pending trials of " + experiment +
                    " here; nothing is written to the server");
  std::int64_t ran = 0;
  for (const nlohmann::json& trial : *trials) {
    if (trial["state"] != "pending" || !trial.value("in_config", true)) continue;
    if (setup_.options.max_trials && ran >= *setup_.options.max_trials) break;
    if (std::optional<int> exit_status = run_dry_trial(*slot, trial, experiment)) {
      return *exit_status;
    }
    ++ran;
  }
  progress_.message("dry run finished: " + std::to_string(ran) + " trials");
  return kWorkerExitOk;
}

std::optional<int> Supervisor::register_worker(const SlotPlan& slot) {
  nlohmann::json about = {{"host", host_name()},
                          {"pid", static_cast<std::int64_t>(::getpid())},
                          {"version", kVersion},
                          {"devices", slot.devices}};
  if (std::optional<nlohmann::json> slurm = slurm_placement_of_this_process()) {
    about["slurm"] = std::move(*slurm);
  }
  Result<nlohmann::json> registered =
      call_with_retry([&] { return server_.post_json("/api/v1/workers", about); }, retry_);
  if (!registered) {
    if (interrupted_) return fail_with(progress_, kWorkerExitInterrupted, "interrupted");
    return fail_with(
        progress_,
        registered.status().code() == Code::kUnauthorized ? kWorkerExitBadSetup : kWorkerExitFailed,
        registered.status().message());
  }
  worker_ids_.push_back((*registered)["worker_id"].get<std::string>());
  config_ = (*registered)["config"];
  heartbeat_interval_ = std::chrono::milliseconds(
      static_cast<std::int64_t>(registered->value("heartbeat_seconds", 10)) * 1000);
  auto name = registered->find("experiment_name");
  progress_.message((several_slots() ? slot_label(slot) + ": worker " : "worker ") +
                    worker_ids_.back() + " registered with " + base_url_ + " for " +
                    (name != registered->end() && name->is_string() ? name->get<std::string>()
                                                                    : std::string("?")));
  return std::nullopt;
}

std::vector<GpuSeat> Supervisor::gpu_seats() const {
  const GpuShare::Mode mode =
      setup_.options.trials_per_gpu_auto ? GpuShare::Mode::kAutomatic : GpuShare::Mode::kFixed;
  std::map<std::string, std::shared_ptr<GpuShare>> shares;  // by the GPU's entry
  std::vector<GpuSeat> seats;
  for (const SlotPlan& plan : setup_.slots) {
    if (!plan.shares_gpu || !plan.cuda_visible_devices) {
      seats.emplace_back();
      continue;
    }
    std::shared_ptr<GpuShare>& share = shares[*plan.cuda_visible_devices];
    if (!share) {
      int slots = static_cast<int>(
          std::count_if(setup_.slots.begin(), setup_.slots.end(), [&](const SlotPlan& other) {
            return other.cuda_visible_devices == plan.cuda_visible_devices;
          }));
      share = std::make_shared<GpuShare>(mode, slots, gpu_memory_reader_of(plan));
    }
    seats.push_back({share, plan.position_on_gpu});
  }
  return seats;
}

int Supervisor::run_slot(const SlotPlan& plan, const std::string& worker_id,
                         const std::shared_ptr<ClaimQuota>& quota, const GpuSeat& seat) {
  std::filesystem::path directory = slot_state_dir(plan);
  HttpServerApi server(base_url_, setup_.password, directory);
  server.set_gpu_reader(gpu_reader_of(plan));
  Outbox outbox(directory / "outbox", fs_);
  Delivery delivery(server, outbox, fs_, retry_, progress_);
  // Uploads beside the next trial, on a connection of their own.
  HttpServerApi upload_server(base_url_, setup_.password, directory);
  Delivery upload_delivery(upload_server, outbox, fs_, retry_, progress_);
  BackgroundDelivery uploads(upload_delivery, progress_);
  // Checkpoints beside the trial that saves them, on a connection of their own too.
  HttpServerApi checkpoint_server(base_url_, setup_.password, directory);
  CheckpointUploads checkpoint_uploads(checkpoint_server, retry_, progress_);
  std::unique_ptr<WorkerSlot> slot =
      make_slot(plan, server, delivery, seat, &uploads, &checkpoint_uploads);
  ClaimSettings settings{
      worker_id,
      quota,
      std::chrono::milliseconds(static_cast<std::int64_t>(setup_.options.poll_seconds * 1000)),
      setup_.options.raise_on_failure,
      [this](std::chrono::milliseconds delay) { return keep_waiting(delay); },
      [] { return random_hex(16); },
      seat};
  ClaimLoop loop(std::move(settings), server, *slot, retry_, progress_, interrupted_);
  return loop.run();
}

int Supervisor::run_claims() {
  for (const SlotPlan& slot : setup_.slots) {
    if (std::optional<int> exit_status = register_worker(slot)) return *exit_status;
  }
  if (Status status = fetch_archives(); !status) {
    return fail_with(progress_, interrupted_ ? kWorkerExitInterrupted : kWorkerExitBadSetup,
                     status.message());
  }
  if (Status status = deliver_outboxes(); !status) {
    return fail_with(progress_, kWorkerExitFailed, status.message());
  }
  // Before the executor, which would only say that the file is missing, not what to do.
  if (Status status = check_experiment_py(); !status) {
    return fail_with(progress_, kWorkerExitBadSetup, status.message());
  }
  auto quota = std::make_shared<ClaimQuota>(setup_.options.max_trials);
  std::vector<GpuSeat> seats = gpu_seats();
  if (!several_slots()) {
    return run_slot(setup_.slots.front(), worker_ids_.front(), quota, seats.front());
  }
  progress_.message(setup_.options.trials_per_gpu_auto
                        ? "running up to " + std::to_string(setup_.slots.size()) +
                              " executor slots, each claiming its own trials (--trials-per-gpu "
                              "auto: one trial per GPU at first, more while their measured peak "
                              "GPU memory fits)"
                        : "running " + std::to_string(setup_.slots.size()) +
                              " executor slots at once, each claiming its own trials");
  std::vector<int> exit_statuses(setup_.slots.size(), kWorkerExitOk);
  {
    std::vector<std::jthread> threads;
    for (std::size_t index = 0; index < setup_.slots.size(); ++index) {
      threads.emplace_back([this, index, &exit_statuses, &quota, &seats] {
        exit_statuses[index] =
            run_slot(setup_.slots[index], worker_ids_[index], quota, seats[index]);
      });
    }
  }
  return combined_exit_status(exit_statuses);
}

int Supervisor::run() {
  if (Status status = prepare_workdir(); !status) {
    return fail_with(progress_, kWorkerExitBadSetup, status.message());
  }
  // What the user's code starts and abandons comes back to us, to be ended with its trial.
  if (Status status = become_child_subreaper(); !status) {
    progress_.message("warning: processes a trial leaves running are not ended (" +
                      status.message() + ")");
  }
  return setup_.options.dry_run ? run_dry() : run_claims();
}

}  // namespace gridexp
