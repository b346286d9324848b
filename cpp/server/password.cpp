#include "server/password.h"

#include "common/auth.h"

namespace gridexp {

Result<PasswordChoice> choose_password(const ServerOptions& options,
                                       const std::optional<std::string>& environment_value,
                                       const std::filesystem::path& state_dir, FileSystem& fs) {
  if (options.password) {
    return PasswordChoice{*options.password, "--password", false, true};
  }
  if (options.password_file) {
    Result<std::string> password = read_password_file(*options.password_file);
    if (!password) return password.status();
    return PasswordChoice{*password, "--password-file " + options.password_file->string(), false,
                          false};
  }
  if (environment_value && !environment_value->empty()) {
    return PasswordChoice{*environment_value, "GRIDEXP_PASSWORD", false, false};
  }
  std::filesystem::path kept = state_dir / "password";
  std::error_code error;
  if (std::filesystem::exists(kept, error)) {
    Result<std::string> password = read_password_file(kept);
    if (!password) return password.status();
    return PasswordChoice{*password, "kept in " + kept.string(), true, false};
  }
  std::string generated = generate_password();
  if (Status status = write_file_atomically(fs, kept, generated + "\n", 0600); !status) {
    return status;
  }
  return PasswordChoice{generated, "generated, kept in " + kept.string(), true, false};
}

}  // namespace gridexp
