#include "worker/options.h"

#include "common/command_line.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>

namespace gridexp {
namespace {

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

Result<bool> parse_bool(const std::string& spelling, const std::string& text) {
  std::string value = lowercase(text);
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  return Status::invalid_argument(spelling + " is True or False, not '" + text + "'");
}

const std::map<std::string, bool WorkerOptions::*>& boolean_flags() {
  static const std::map<std::string, bool WorkerOptions::*> flags{
      {"save_models", &WorkerOptions::save_models},
      {"download_scripts", &WorkerOptions::download_scripts},
      {"download_data", &WorkerOptions::download_data},
      {"dry_run", &WorkerOptions::dry_run},
      {"raise_on_failure", &WorkerOptions::raise_on_failure},
      {"consistent_dataset", &WorkerOptions::consistent_dataset},
  };
  return flags;
}

using BooleanFlags = std::map<std::string, bool WorkerOptions::*>;

// `--noflag` and `--no-flag` (normalized "noflag", "no_flag") name the flag they turn off.
BooleanFlags::const_iterator negated_flag(const std::string& name) {
  for (std::string prefix : {"no_", "no"}) {
    if (name.rfind(prefix, 0) != 0) continue;
    auto flag = boolean_flags().find(name.substr(prefix.size()));
    if (flag != boolean_flags().end()) return flag;
  }
  return boolean_flags().end();
}

using Setter = std::function<Status(WorkerOptions&, const std::string&)>;

template <typename Field>
Setter text_setter(Field WorkerOptions::*field) {
  return [=](WorkerOptions& options, const std::string& text) {
    options.*field = text;
    return Status::ok();
  };
}

Status set_max_trials(WorkerOptions& options, const std::string& text) {
  std::int64_t count = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (error != std::errc() || end != text.data() + text.size() || count < 1) {
    return Status::invalid_argument("--max_trials needs a whole number of at least 1, not '" +
                                    text + "'");
  }
  options.max_trials = count;
  return Status::ok();
}

Status set_poll_seconds(WorkerOptions& options, const std::string& text) {
  char* end = nullptr;
  double seconds = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(seconds >= 0.05 && seconds <= 3600)) {
    return Status::invalid_argument("--poll_seconds needs seconds between 0.05 and 3600");
  }
  options.poll_seconds = seconds;
  return Status::ok();
}

Status set_grace_seconds(WorkerOptions& options, const std::string& text) {
  char* end = nullptr;
  double seconds = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(seconds >= 0 && seconds <= 86'400)) {
    return Status::invalid_argument("--grace_seconds needs seconds between 0 and 86400, not '" +
                                    text + "'");
  }
  options.grace_seconds = seconds;
  return Status::ok();
}

// "0,2": GPU numbers, each once.
Result<std::vector<int>> parse_gpu_list(const std::string& text) {
  std::vector<int> indices;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = std::min(text.find(',', start), text.size());
    int index = -1;
    auto [end, error] = std::from_chars(text.data() + start, text.data() + comma, index);
    if (error != std::errc() || end != text.data() + comma || index < 0) {
      return Status::invalid_argument("--gpus is all, none or GPU numbers such as 0,2, not '" +
                                      text + "'");
    }
    if (std::find(indices.begin(), indices.end(), index) != indices.end()) {
      return Status::invalid_argument("--gpus names GPU " + std::to_string(index) + " twice in '" +
                                      text + "'");
    }
    indices.push_back(index);
    start = comma + 1;
  }
  return indices;
}

Status set_gpus(WorkerOptions& options, const std::string& text) {
  std::string value = lowercase(text);
  if (value == "all" || value == "none") {
    options.gpus = {value == "all" ? GpuChoice::Kind::kAll : GpuChoice::Kind::kNone, {}};
    return Status::ok();
  }
  Result<std::vector<int>> indices = parse_gpu_list(text);
  if (!indices) return indices.status();
  options.gpus = {GpuChoice::Kind::kListed, std::move(indices).value()};
  return Status::ok();
}

Status set_trials_per_gpu(WorkerOptions& options, const std::string& text) {
  if (lowercase(text) == "auto") {
    options.trials_per_gpu = 1;
    options.trials_per_gpu_auto = true;
    return Status::ok();
  }
  int count = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (error != std::errc() || end != text.data() + text.size() || count < 1) {
    return Status::invalid_argument(
        "--trials-per-gpu needs a whole number of at least 1 (executors per GPU) or auto, not '" +
        text + "'");
  }
  options.trials_per_gpu = count;
  options.trials_per_gpu_auto = false;
  return Status::ok();
}

const std::map<std::string, Setter>& valued_options() {
  static const std::map<std::string, Setter> options = {
      {"address", text_setter(&WorkerOptions::address)},
      {"server_password", text_setter(&WorkerOptions::password)},
      {"password_file", text_setter(&WorkerOptions::password_file)},
      {"workdir", text_setter(&WorkerOptions::workdir)},
      {"max_trials", set_max_trials},
      {"poll_seconds", set_poll_seconds},
      {"grace_seconds", set_grace_seconds},
      {"gpus", set_gpus},
      {"trials_per_gpu", set_trials_per_gpu},
  };
  return options;
}

// `--flag`, `--flag=False`: sets the flag `field`.
Status set_flag(WorkerOptions& options, bool WorkerOptions::*field, const CommandLineItem& item) {
  bool value = true;
  if (item.value) {
    Result<bool> parsed = parse_bool(item.spelling, *item.value);
    if (!parsed) return parsed.status();
    value = *parsed;
  }
  options.*field = value;
  return Status::ok();
}

// One named item of the command line (`name` is its canonical name).
Status apply_option(WorkerOptions& options, const std::string& name, const CommandLineItem& item) {
  if (name == "help" || name == "version") {
    (name == "help" ? options.show_help : options.show_version) = true;
  } else if (auto flag = boolean_flags().find(name); flag != boolean_flags().end()) {
    return set_flag(options, flag->second, item);
  } else if (auto negated = negated_flag(name); negated != boolean_flags().end()) {
    if (item.value) return Status::invalid_argument(item.spelling + " takes no value");
    options.*(negated->second) = false;
  } else if (auto setter = valued_options().find(name); setter != valued_options().end()) {
    return setter->second(options, *item.value);
  } else {
    return Status::invalid_argument("unknown option " + item.spelling + " (see --help)");
  }
  return Status::ok();
}

// What a run needs once every item is read: the server's address, one password source.
Status check_worker_options(const WorkerOptions& options) {
  if (options.address.empty()) {
    return Status::invalid_argument("--address=HOST:PORT is required (the gridexp-server)");
  }
  if (Result<std::string> url = server_base_url(options.address); !url) return url.status();
  if (options.password && options.password_file) {
    return Status::invalid_argument("give --server_password or --password_file, not both");
  }
  return Status::ok();
}

}  // namespace

// The original framework's name for the password flag, and ours.
std::string canonical_name(const std::string& name) {
  return name == "password" ? "server_password" : name;
}

Result<WorkerOptions> parse_worker_options(const std::vector<std::string>& arguments) {
  Result<std::vector<CommandLineItem>> items = split_command_line(
      arguments,
      [](const std::string& name) { return valued_options().count(canonical_name(name)) > 0; });
  if (!items) return items.status();
  WorkerOptions options;
  for (const CommandLineItem& item : *items) {
    std::string name = canonical_name(item.name);
    if (name.empty()) {
      return Status::invalid_argument("unexpected argument '" + item.spelling + "' (see --help)");
    }
    if (Status status = apply_option(options, name, item); !status) return status;
  }
  if (options.show_help || options.show_version) return options;
  if (Status status = check_worker_options(options); !status) return status;
  return options;
}

Result<std::string> server_base_url(const std::string& address) {
  std::string url = address;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) url = "http://" + url;
  std::size_t host_start = url.find("://") + 3;
  if (url.size() <= host_start || url.find('/', host_start) != std::string::npos) {
    return Status::invalid_argument("--address must be HOST:PORT or http://HOST:PORT, not '" +
                                    address + "'");
  }
  return url;
}

std::string worker_usage() {
  return R"(usage: gridexp-worker --address=HOST:PORT [options]

Runs trials of the grid served by gridexp-server at HOST:PORT: each one is a call of
run_one(hyperparameters, dataset) from experiment.py in the working directory, after one
init_dataset(config). Results, model files, checkpoints and logs go back to the server.
Exits 0 when no trial is left to run anywhere.

stopping: SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 asks every running trial to stop, waits up to
--grace_seconds, uploads each trial's last checkpoint, hands the trials back to the server
(pending again at once) and exits 128+signal (143, 130, 138). A second signal kills the
executors at once (the trials are still handed back); a third exits at once.

password (the server prints it at start-up; in order of preference):
  GRIDEXP_PASSWORD=...        environment variable
  --password_file=FILE        first line of FILE
  --server_password=...       visible to other users in `ps`

options (True/False flags also take --flag, --noflag and --flag=False; - or _ alike):
  --address=HOST:PORT         the server (also http://HOST:PORT)
  --workdir=DIR               where experiment.py and the data live (default: .)
  --download_scripts          fetch scripts.zip from the server and unpack it into DIR
  --download_data=True        fetch data.zip from the server and unpack it into DIR
  --save_models=True          send each trial's model (torch.save of its state_dict, or
                              experiment.save_model(model, path)) to the server
  --consistent_dataset=True   call init_dataset(config) once; False: once per trial
  --raise_on_failure=True     stop at the first failed trial; False: go on to the next
  --dry_run                   run pending trials here, write nothing to the server
  --max_trials=N              stop after N trials
  --poll_seconds=2            wait between asks while other workers' trials run
  --grace_seconds=60          after SIGTERM, SIGINT or SIGUSR1: how long the running trials
                              get to return (gridexp.should_stop() is true, stop_reason()
                              "preempted") before their executors are killed
  --gpus=all                  GPUs to run trials on: all, none (the CPU) or numbers such as
                              0,2 (of those CUDA_VISIBLE_DEVICES leaves visible); one executor
                              per GPU, each with CUDA_VISIBLE_DEVICES set to its GPU
  --trials-per-gpu=1          executors (trials at once) on each GPU; auto: one to start,
                              more as the trials' measured peak GPU memory fits (up to 8)
  --help, --version
)";
}

}  // namespace gridexp
