// ServerOptions: gridexp-server's command line, parsed and validated.
//
// Accepts `--name value` and `--name=value` (the seed's `--port=8030`), kebab or snake case,
// and one positional experiment directory. Errors name the offending option. Pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/config_change.h"

namespace gridexp {

struct ServerOptions {
  std::filesystem::path experiment_dir = ".";
  std::optional<std::filesystem::path> config_path;  // default: <experiment_dir>/config.yaml
  std::string host = "0.0.0.0";
  int port = 8030;  // 0 picks a free port, printed in the banner
  int lease_seconds = 30;
  int max_attempts = 3;
  std::int64_t max_upload_mb = 16384;
  std::optional<std::string> password;
  std::optional<std::filesystem::path> password_file;
  int threads = 64;
  int max_wrong_passwords = 20;                    // per address and minute; 0: no throttle
  std::optional<std::filesystem::path> plotly_js;  // default: find_plotly_js()
  bool sync_full = false;
  // Past this many points the config is refused before anything is written: start-up time
  // and the database grow with the grid (1,000,000 points: about 4 s on 2 idle cores).
  std::uint64_t max_grid_points = 2'000'000;
  ConfigChangedChoice config_changed = ConfigChangedChoice::kAsk;
  bool show_help = false;
  bool show_version = false;

  std::filesystem::path resolved_config_path() const {
    return config_path.value_or(experiment_dir / "config.yaml");
  }
};

Result<ServerOptions> parse_server_options(const std::vector<std::string>& arguments);

std::string server_usage();

}  // namespace gridexp
