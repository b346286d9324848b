// The dashboard's static files (cpp/server/dashboard/), compiled into the server at build
// time by cmake/embed_files.cmake, so an installed server needs no files beside it. The list
// is GRIDEXP_DASHBOARD_FILES in cpp/CMakeLists.txt: a file added there is embedded and, unless
// it is a page (.html), served under /static/<name> (server/dashboard_routes.cpp). Immutable
// data: safe from any thread.
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace gridexp {

struct DashboardFile {
  std::string_view name;  // the file name, no directory: "index.html", "app.js", ...
  std::string_view bytes;
  std::string_view content_type;  // from the extension: text/html, text/javascript, text/css
};

// Every compiled-in file, in the order of GRIDEXP_DASHBOARD_FILES.
std::span<const DashboardFile> dashboard_files();

// The bytes of the dashboard file named `name` ("index.html", "app.js", ...), if there is one.
std::optional<std::string_view> find_dashboard_file(std::string_view name);

}  // namespace gridexp
