// gridexp-executor --command-fd N --event-fd M: the child process of gridexp-worker that runs
// the user's experiment.py in an embedded CPython (docs/executor.md). Not meant to be started
// by hand.
#include <fcntl.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>

#include "executor/accelerator_memory.h"
#include "executor/executor_loop.h"
#include "executor/python_runtime.h"
#include "executor/stop_signals.h"

namespace {

constexpr const char* kUsage =
    "usage: gridexp-executor --command-fd N --event-fd M\n"
    "Runs experiment.py for gridexp-worker, which starts it (see docs/executor.md).\n";

std::optional<int> parse_fd(std::string_view text) {
  int fd = -1;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (error != std::errc() || end != text.data() + text.size() || fd < 0) return std::nullopt;
  return fd;
}

// Programs the user's code starts must not inherit the supervisor's pipes.
bool mark_close_on_exec(int fd, const char* name) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
    std::fprintf(stderr, "gridexp-executor: %s %d is not usable: %s\n", name, fd,
                 std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // First: a batch system's SIGTERM may come at any time (stop_signals.h).
  gridexp::ignore_stop_signals_in_executor();
  gridexp::ExecutorOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::optional<int> fd = i + 1 < argc ? parse_fd(argv[i + 1]) : std::nullopt;
    if ((argument != "--command-fd" && argument != "--event-fd") || !fd) {
      std::fprintf(stderr, "gridexp-executor: bad argument %s\n%s", argv[i], kUsage);
      return gridexp::kExecutorExitUsage;
    }
    (argument == "--command-fd" ? options.command_fd : options.event_fd) = *fd;
    ++i;
  }
  if (options.command_fd < 0 || options.event_fd < 0) {
    std::fputs(kUsage, stderr);
    return gridexp::kExecutorExitUsage;
  }
  if (!mark_close_on_exec(options.command_fd, "--command-fd") ||
      !mark_close_on_exec(options.event_fd, "--event-fd")) {
    return gridexp::kExecutorExitUsage;
  }
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  options.python_executable =
      error ? gridexp::build_python_executable() : gridexp::find_python_executable(self);
  options.workdir = std::filesystem::current_path(error);
  if (error) {
    std::fprintf(stderr, "gridexp-executor: no working directory: %s\n", error.message().c_str());
    return gridexp::kExecutorExitUsage;
  }
  options.shared_gpu =
      gridexp::shared_gpu_from_environment(std::getenv(gridexp::kSharedGpuEnvironmentVariable));
  return gridexp::run_executor(options);
}
