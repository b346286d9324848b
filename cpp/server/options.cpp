#include "server/options.h"

#include "common/command_line.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <map>

namespace gridexp {
namespace {

Result<std::int64_t> parse_integer(const std::string& option, const std::string& text,
                                   std::int64_t minimum, std::int64_t maximum) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return Status::invalid_argument("--" + option + " needs a whole number, not '" + text + "'");
  }
  if (value < minimum || value > maximum) {
    return Status::invalid_argument("--" + option + " must be between " + std::to_string(minimum) +
                                    " and " + std::to_string(maximum) + ", not " + text);
  }
  return value;
}

using Setter = std::function<Status(ServerOptions&, const std::string&)>;

template <typename Field>
using OptionField = Field ServerOptions::*;

template <typename Field>
Setter integer_setter(const char* name, OptionField<Field> field, std::int64_t minimum,
                      std::int64_t maximum) {
  return [=](ServerOptions& options, const std::string& text) {
    Result<std::int64_t> value = parse_integer(name, text, minimum, maximum);
    if (!value) return value.status();
    options.*field = static_cast<Field>(*value);
    return Status::ok();
  };
}

template <typename Field>
Setter text_setter(OptionField<Field> field) {
  return [=](ServerOptions& options, const std::string& text) {
    options.*field = text;
    return Status::ok();
  };
}

// As text_setter, refusing an empty value with `complaint`.
template <typename Field>
Setter non_empty_text_setter(OptionField<Field> field, const char* complaint) {
  return [=](ServerOptions& options, const std::string& text) {
    if (text.empty()) return Status::invalid_argument(complaint);
    options.*field = text;
    return Status::ok();
  };
}

Status set_config_changed(ServerOptions& options, const std::string& text) {
  if (text == "keep-results" || text == "keep_results") {
    options.config_changed = ConfigChangedChoice::kKeepResults;
  } else if (text == "new-experiment" || text == "new_experiment") {
    options.config_changed = ConfigChangedChoice::kNewExperiment;
  } else {
    return Status::invalid_argument(
        "--config-changed is 'keep-results' or 'new-experiment', not '" + text + "'");
  }
  return Status::ok();
}

Status set_sync(ServerOptions& options, const std::string& text) {
  if (text != "normal" && text != "full") {
    return Status::invalid_argument("--sync is 'normal' or 'full', not '" + text + "'");
  }
  options.sync_full = text == "full";
  return Status::ok();
}

const std::map<std::string, Setter>& valued_options() {
  static const std::map<std::string, Setter> options = {
      {"host", non_empty_text_setter(&ServerOptions::host, "--host needs an address")},
      {"port", integer_setter("port", &ServerOptions::port, 0, 65535)},
      {"config", text_setter(&ServerOptions::config_path)},
      {"lease_seconds", integer_setter("lease-seconds", &ServerOptions::lease_seconds, 2, 86400)},
      {"max_attempts", integer_setter("max-attempts", &ServerOptions::max_attempts, 1, 1000)},
      {"max_upload_mb", integer_setter("max-upload-mb", &ServerOptions::max_upload_mb, 1, 1 << 24)},
      {"threads", integer_setter("threads", &ServerOptions::threads, 2, 4096)},
      {"max_wrong_passwords",
       integer_setter("max-wrong-passwords", &ServerOptions::max_wrong_passwords, 0, 1'000'000)},
      {"password", non_empty_text_setter(&ServerOptions::password, "--password must not be empty")},
      {"password_file", text_setter(&ServerOptions::password_file)},
      {"plotly_js", text_setter(&ServerOptions::plotly_js)},
      {"max_grid_points", integer_setter("max-grid-points", &ServerOptions::max_grid_points, 1,
                                         std::numeric_limits<std::int64_t>::max())},
      {"config_changed", set_config_changed},
      {"sync", set_sync},
  };
  return options;
}

}  // namespace

Result<ServerOptions> parse_server_options(const std::vector<std::string>& arguments) {
  Result<std::vector<CommandLineItem>> items = split_command_line(
      arguments, [](const std::string& name) { return valued_options().count(name) > 0; });
  if (!items) return items.status();
  ServerOptions options;
  bool have_directory = false;
  for (const CommandLineItem& item : *items) {
    if (item.name.empty()) {
      if (have_directory) {
        return Status::invalid_argument("one experiment directory only, got '" +
                                        options.experiment_dir.string() + "' and '" + *item.value +
                                        "'");
      }
      options.experiment_dir = *item.value;
      have_directory = true;
    } else if (item.name == "help" || item.name == "version") {
      if (item.value) return Status::invalid_argument(item.spelling + " takes no value");
      (item.name == "help" ? options.show_help : options.show_version) = true;
    } else if (auto setter = valued_options().find(item.name); setter != valued_options().end()) {
      if (Status status = setter->second(options, *item.value); !status) return status;
    } else {
      return Status::invalid_argument("unknown option " + item.spelling + " (see --help)");
    }
  }
  if (options.password && options.password_file) {
    return Status::invalid_argument("give --password or --password-file, not both");
  }
  return options;
}

std::string server_usage() {
  return R"(usage: gridexp-server [DIR] [options]

Serves the hyperparameter grid of DIR/config.yaml to gridexp-worker processes and keeps
every trial's state, results and model files in DIR (state in DIR/.gridexp/state.db,
models in DIR/models/).

options:
  --port N             TCP port (default 8030; 0 picks a free one)
  --host ADDR          address to listen on (default 0.0.0.0, every interface)
  --config FILE        experiment config (default DIR/config.yaml)
  --password-file F    read the password from file F (first line)
  --password P         the password itself (visible in `ps`: prefer the file or
                       GRIDEXP_PASSWORD). With none of these, a password is generated
                       on first start, kept in DIR/.gridexp/password and printed.
  --lease-seconds N    a trial returns to pending N s after its worker's last
                       heartbeat (default 30)
  --max-attempts N     attempts a trial may lose (its lease expired, its executor
                       killed by a signal) before it is failed (default 3)
  --max-upload-mb N    largest accepted model upload or request body (default 16384)
  --threads N          requests served at once (default 64); idle keep-alive
                       connections hold no thread, so hundreds of workers need no
                       more; each model upload or download holds one while it streams
  --max-wrong-passwords N
                       an address giving N wrong passwords within a minute is refused
                       (429) for the rest of it (default 20; 0: never — use behind a
                       reverse proxy, where every client has the proxy's address)
  --plotly-js FILE     the plotly.min.js the dashboard serves (default: the one the
                       `plotly` Python package installed beside gridexp ships)
  --sync normal|full   SQLite durability: normal survives a crash of the server,
                       full also a power loss, at one fsync per change (default normal)
  --max-grid-points N  refuse a config whose grid has more than N points, before
                       anything is written (default 2000000; start-up time and the
                       database grow with the grid: 1000000 points take about 4 s
                       and 120 MB on 2 idle cores)
  --config-changed keep-results|new-experiment
                       when the config outside hyperparameters (what
                       init_dataset(config) sees) differs from the one the trials ran
                       under, the server refuses to start unless told: keep-results
                       keeps every result (the change does not affect them),
                       new-experiment runs the whole grid again under the new config
                       (earlier trials are kept but never handed out)
  --version, --help
)";
}

}  // namespace gridexp
