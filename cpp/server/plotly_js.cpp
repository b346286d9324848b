#include "server/plotly_js.h"

#include <algorithm>
#include <vector>

namespace gridexp {

std::optional<std::filesystem::path> find_plotly_js(
    const std::filesystem::path& program_dir,
    const std::optional<std::filesystem::path>& explicit_path) {
  std::error_code error;
  if (explicit_path) {
    if (std::filesystem::is_regular_file(*explicit_path, error)) return *explicit_path;
    return std::nullopt;
  }
  if (program_dir.empty()) return std::nullopt;
  const std::filesystem::path relative =
      std::filesystem::path("plotly") / "package_data" / "plotly.min.js";
  std::filesystem::path prefix = program_dir.parent_path();
  std::vector<std::filesystem::path> candidates;
  for (const std::filesystem::path& lib :
       {prefix / "lib", prefix / "lib64", prefix / "local" / "lib"}) {
    if (!std::filesystem::is_directory(lib, error)) continue;
    // lib/python3.X/{site,dist}-packages, and Debian's lib/python3/dist-packages.
    for (const auto& entry : std::filesystem::directory_iterator(lib, error)) {
      std::string name = entry.path().filename().string();
      if (!name.starts_with("python3")) continue;
      for (const char* packages : {"site-packages", "dist-packages"}) {
        std::filesystem::path candidate = entry.path() / packages / relative;
        if (std::filesystem::is_regular_file(candidate, error)) candidates.push_back(candidate);
      }
    }
  }
  if (candidates.empty()) return std::nullopt;
  // Several Pythons: any one's copy serves; the last by name is a stable choice.
  std::sort(candidates.begin(), candidates.end());
  return candidates.back();
}

std::filesystem::path running_program_dir() {
  std::error_code error;
  std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::filesystem::path() : program.parent_path();
}

}  // namespace gridexp
