# Every third-party library comes from the distribution (Debian 12 and 13 package versions).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(SQLite3 REQUIRED)
# CMake 4 renamed FindSQLite3's target to SQLite3::SQLite3 and deprecated the old name.
if(TARGET SQLite3::SQLite3)
  set(GRIDEXP_SQLITE_TARGET SQLite3::SQLite3)
else()
  set(GRIDEXP_SQLITE_TARGET SQLite::SQLite3)
endif()
find_package(nlohmann_json 3.10 REQUIRED)
find_package(yaml-cpp REQUIRED)
# libzip's CMake package on Debian names tools from another package; pkg-config is reliable.
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)

# Debian ships cpp-httplib as a compiled library; its pkg-config Cflags carry the feature
# macros the library was built with, which must match for the ABI to agree.
pkg_check_modules(HTTPLIB IMPORTED_TARGET cpp-httplib)
if(HTTPLIB_FOUND)
  add_library(gridexp_httplib INTERFACE)
  target_link_libraries(gridexp_httplib INTERFACE PkgConfig::HTTPLIB)
else()
  find_package(httplib REQUIRED)
  add_library(gridexp_httplib INTERFACE)
  target_link_libraries(gridexp_httplib INTERFACE httplib::httplib)
endif()

# yaml-cpp 0.7 (Debian 12) exports `yaml-cpp`, 0.8 (Debian 13) `yaml-cpp::yaml-cpp`.
add_library(gridexp_yaml INTERFACE)
if(TARGET yaml-cpp::yaml-cpp)
  target_link_libraries(gridexp_yaml INTERFACE yaml-cpp::yaml-cpp)
else()
  target_link_libraries(gridexp_yaml INTERFACE yaml-cpp)
endif()

# The executor embeds CPython through pybind11. Prefer the interpreter of the active
# environment (a venv's python), so the executor runs the user's code with its packages.
find_package(Python 3.9 REQUIRED COMPONENTS Interpreter Development.Embed)
# The pybind11 of that interpreter first (pip's, which the build requires), the system's after.
execute_process(COMMAND "${Python_EXECUTABLE}" -m pybind11 --cmakedir
                OUTPUT_VARIABLE GRIDEXP_PYBIND11_DIR OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE GRIDEXP_PYBIND11_STATUS)
if(GRIDEXP_PYBIND11_STATUS EQUAL 0 AND NOT pybind11_DIR)
  set(pybind11_DIR "${GRIDEXP_PYBIND11_DIR}")
endif()
find_package(pybind11 2.11 CONFIG REQUIRED)
