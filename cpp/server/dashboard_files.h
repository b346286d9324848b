// The dashboard's static files (cpp/server/dashboard/), compiled into the server at build
// time by cmake/embed_files.cmake, so an installed server needs no files beside it.
#pragma once

#include <optional>
#include <string_view>

namespace gridexp {

// The bytes of the dashboard file named `name` ("index.html", "app.js", ...), if there is one.
std::optional<std::string_view> find_dashboard_file(std::string_view name);

}  // namespace gridexp
