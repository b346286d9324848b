// The server's password: where it comes from, in order of precedence.
//
// --password, then --password-file (its first line), then the GRIDEXP_PASSWORD environment
// variable, then <state_dir>/password from an earlier start; with none, a fresh password is
// generated and kept in <state_dir>/password with mode 0600 so restarts keep it.
// Pure apart from the file reads and the one write; call once at start-up.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "common/file_system.h"
#include "common/status.h"
#include "server/options.h"

namespace gridexp {

struct PasswordChoice {
  std::string password;
  std::string origin;         // for the banner, e.g. "--password-file /etc/gridexp" or "generated"
  bool print_it = false;      // generated or kept by the server: the banner shows it
  bool warn_visible = false;  // given on the command line, where `ps` shows it
};

Result<PasswordChoice> choose_password(const ServerOptions& options,
                                       const std::optional<std::string>& environment_value,
                                       const std::filesystem::path& state_dir, FileSystem& fs);

}  // namespace gridexp
