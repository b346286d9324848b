// kVersion: gridexp's version, as the programs print it and send it. It is written in one
// place, CMakeLists.txt's project(gridexp VERSION ...): CMake passes it to the compiler as
// GRIDEXP_VERSION, and the Python package's metadata reads it from there too (pyproject.toml).
#pragma once

namespace gridexp {

inline constexpr char kVersion[] = GRIDEXP_VERSION;

}  // namespace gridexp
