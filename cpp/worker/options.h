// WorkerOptions: gridexp-worker's command line, in the original framework's forms.
//
// Boolean flags accept `--flag`, `--flag=True|False` (any case; also 1/0, yes/no), `--noflag`
// and `--no-flag`; every name works in snake_case and kebab-case (`--save_models`,
// `--save-models`). Valued options take `--name=value` or `--name value`. Pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace gridexp {

// --gpus: which of the GPUs this worker can see get executor slots (gpu_slots.h).
struct GpuChoice {
  enum class Kind { kAll, kNone, kListed };
  Kind kind = Kind::kAll;
  std::vector<int> indices;  // kListed: positions in the visible set, each named once
};

struct WorkerOptions {
  std::string address;                  // host:port or http://host:port; required
  std::optional<std::string> password;  // --server_password (visible in `ps`)
  std::optional<std::filesystem::path> password_file;
  bool save_models = true;
  bool download_scripts = false;
  bool download_data = true;
  bool dry_run = false;
  bool raise_on_failure = true;
  bool consistent_dataset = true;
  std::filesystem::path workdir = ".";
  std::optional<std::int64_t> max_trials;
  double poll_seconds = 2.0;  // how often to ask again while other workers' trials run
  // How long a stop signal lets the running trials take to return before their executors are
  // killed (--grace_seconds).
  double grace_seconds = 60.0;
  GpuChoice gpus;
  int trials_per_gpu = 1;  // executors per GPU
  // --trials-per-gpu auto: as many per GPU as measured memory allows (gpu_packing.h);
  // trials_per_gpu is then 1.
  bool trials_per_gpu_auto = false;
  bool show_help = false;
  bool show_version = false;
};

Result<WorkerOptions> parse_worker_options(const std::vector<std::string>& arguments);

std::string worker_usage();

// "http://host:port" for "host:port", "http://host:port" or "https://…" (kept as given).
Result<std::string> server_base_url(const std::string& address);

}  // namespace gridexp
