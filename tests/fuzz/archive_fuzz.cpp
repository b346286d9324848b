// Fuzz target: the worker's zip extraction (extract_zip, cpp/worker/archive.h), whose input
// comes from the network.
//
// Each input is written to a file and extracted into a fresh destination that already holds a
// symlink leading outside it (an archive must not write through it) inside a sandbox
// directory. Whatever the archive, extraction must not crash, and afterwards:
//   - nothing outside the destination was created, changed or removed;
//   - the destination holds only directories and regular files (besides the planted link),
//     none setuid, setgid or sticky, none group- or other-writable;
//   - a refused archive left the destination as it was.
// The sandbox lives in /dev/shm when there is one: the extraction syncs every file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>

#include "worker/archive.h"

namespace fs = std::filesystem;

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "archive_fuzz: %s\n", what);
    std::abort();
  }
}

// Removed at exit; a crash leaves it for a look.
fs::path sandbox_path;

void remove_sandbox() {
  std::error_code ignored;
  fs::remove_all(sandbox_path, ignored);
}

fs::path make_sandbox() {
  std::error_code error;
  fs::path base = fs::is_directory("/dev/shm", error) && ::access("/dev/shm", W_OK) == 0
                      ? fs::path("/dev/shm")
                      : fs::temp_directory_path();
  fs::path sandbox = base / ("gridexp-archive-fuzz-" + std::to_string(::getpid()));
  fs::remove_all(sandbox, error);
  fs::create_directories(sandbox / "outside");
  std::ofstream(sandbox / "outside" / "kept.txt") << "kept";
  sandbox_path = sandbox;
  std::atexit(remove_sandbox);
  return sandbox;
}

// Path -> (type, mode, size) of everything under `root`, symlinks not followed.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> entries;
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    struct stat info = {};
    if (::lstat(it->path().c_str(), &info) != 0) continue;
    entries[fs::relative(it->path(), root).string()] =
        std::to_string(info.st_mode) + ":" + std::to_string(info.st_size);
  }
  return entries;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path sandbox = make_sandbox();
  static const std::map<std::string, std::string> outside_before = snapshot(sandbox / "outside");
  const fs::path archive = sandbox / "input.zip";
  const fs::path destination = sandbox / "destination";

  std::error_code error;
  fs::remove_all(destination, error);
  fs::create_directories(destination);
  fs::create_directory_symlink("../outside", destination / "link");
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const std::map<std::string, std::string> destination_before = snapshot(destination);

  gridexp::ExtractLimits limits;
  limits.max_entries = 64;
  limits.max_total_bytes = 1 << 20;
  limits.reserved_paths = {".gridexp-worker"};
  gridexp::Status status = gridexp::extract_zip(archive, destination, limits);

  require(snapshot(sandbox / "outside") == outside_before, "wrote outside the destination");
  std::map<std::string, std::string> sandbox_entries = snapshot(sandbox);
  for (const auto& [path, description] : sandbox_entries) {
    require(path == "input.zip" || path == "outside" || path.starts_with("outside/") ||
                path == "destination" || path.starts_with("destination/"),
            "created a file beside the destination");
  }
  for (auto it = fs::recursive_directory_iterator(destination, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->path() == destination / "link") {
      it.disable_recursion_pending();
      continue;
    }
    struct stat info = {};
    require(::lstat(it->path().c_str(), &info) == 0, "an entry vanished while listed");
    require(S_ISREG(info.st_mode) || S_ISDIR(info.st_mode), "wrote something not a plain file");
    require((info.st_mode & (S_ISUID | S_ISGID | S_ISVTX | S_IWGRP | S_IWOTH)) == 0 ||
                S_ISDIR(info.st_mode),
            "a file with setuid/setgid/sticky or group/other write permission");
  }
  require(fs::is_symlink(destination / "link"), "the planted symlink was replaced");
  if (!status) require(snapshot(destination) == destination_before, "a refused archive left files");
  return 0;
}
