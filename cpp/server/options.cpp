#include "server/options.h"

#include <algorithm>
#include <charconv>
#include <functional>
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
Setter integer_setter(const char* name, Field ServerOptions::*field, std::int64_t minimum,
                      std::int64_t maximum) {
  return [=](ServerOptions& options, const std::string& text) {
    Result<std::int64_t> value = parse_integer(name, text, minimum, maximum);
    if (!value) return value.status();
    options.*field = static_cast<Field>(*value);
    return Status::ok();
  };
}

const std::map<std::string, Setter>& valued_options() {
  static const std::map<std::string, Setter> options = {
      {"host",
       [](ServerOptions& o, const std::string& v) {
         if (v.empty()) return Status::invalid_argument("--host needs an address");
         o.host = v;
         return Status::ok();
       }},
      {"port", integer_setter("port", &ServerOptions::port, 0, 65535)},
      {"config",
       [](ServerOptions& o, const std::string& v) {
         o.config_path = v;
         return Status::ok();
       }},
      {"lease-seconds", integer_setter("lease-seconds", &ServerOptions::lease_seconds, 2, 86400)},
      {"max-attempts", integer_setter("max-attempts", &ServerOptions::max_attempts, 1, 1000)},
      {"max-upload-mb", integer_setter("max-upload-mb", &ServerOptions::max_upload_mb, 1, 1 << 24)},
      {"threads", integer_setter("threads", &ServerOptions::threads, 2, 4096)},
      {"password",
       [](ServerOptions& o, const std::string& v) {
         if (v.empty()) return Status::invalid_argument("--password must not be empty");
         o.password = v;
         return Status::ok();
       }},
      {"password-file",
       [](ServerOptions& o, const std::string& v) {
         o.password_file = v;
         return Status::ok();
       }},
      {"sync",
       [](ServerOptions& o, const std::string& v) {
         if (v != "normal" && v != "full") {
           return Status::invalid_argument("--sync is 'normal' or 'full', not '" + v + "'");
         }
         o.sync_full = v == "full";
         return Status::ok();
       }},
  };
  return options;
}

}  // namespace

Result<ServerOptions> parse_server_options(const std::vector<std::string>& arguments) {
  ServerOptions options;
  bool have_directory = false;
  for (std::size_t i = 0; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.size() < 2 || argument.rfind("--", 0) != 0) {
      if (argument.size() > 1 && argument[0] == '-') {
        if (argument == "-h") {
          options.show_help = true;
          continue;
        }
        return Status::invalid_argument("unknown option " + argument + " (see --help)");
      }
      if (have_directory) {
        return Status::invalid_argument("one experiment directory only, got '" +
                                        options.experiment_dir.string() + "' and '" + argument +
                                        "'");
      }
      options.experiment_dir = argument;
      have_directory = true;
      continue;
    }
    std::string name = argument.substr(2);
    std::optional<std::string> inline_value;
    if (std::size_t equals = name.find('='); equals != std::string::npos) {
      inline_value = name.substr(equals + 1);
      name.resize(equals);
    }
    std::replace(name.begin(), name.end(), '_', '-');
    if (name == "help" || name == "version") {
      if (inline_value) return Status::invalid_argument("--" + name + " takes no value");
      (name == "help" ? options.show_help : options.show_version) = true;
      continue;
    }
    auto setter = valued_options().find(name);
    if (setter == valued_options().end()) {
      return Status::invalid_argument("unknown option --" + name + " (see --help)");
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < arguments.size()) {
      value = arguments[++i];
    } else {
      return Status::invalid_argument("--" + name + " needs a value");
    }
    if (Status status = setter->second(options, value); !status) return status;
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
  --max-attempts N     leases that may expire before a trial is failed (default 3)
  --max-upload-mb N    largest accepted model upload or request body (default 16384)
  --threads N          HTTP worker threads (default 64)
  --sync normal|full   SQLite durability: normal survives a crash of the server,
                       full also a power loss, at one fsync per change (default normal)
  --version, --help
)";
}

}  // namespace gridexp
