// Finds the plotly.min.js the dashboard serves: the file the `plotly` Python package ships
// (plotly/package_data/plotly.min.js), in the Python environment gridexp-server was installed
// into — a venv, `pip install --user`, or Debian's dist-packages beside /usr/local/bin.
#pragma once

#include <filesystem>
#include <optional>

namespace gridexp {

// `explicit_path` (from --plotly-js or GRIDEXP_PLOTLY_JS) wins when given, even if missing, so
// a typo is reported rather than silently replaced. Otherwise looks under `program_dir/..`.
std::optional<std::filesystem::path> find_plotly_js(
    const std::filesystem::path& program_dir,
    const std::optional<std::filesystem::path>& explicit_path);

// The directory of the running program (from /proc/self/exe), or empty.
std::filesystem::path running_program_dir();

}  // namespace gridexp
