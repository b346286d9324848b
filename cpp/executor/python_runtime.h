// PythonRuntime: the CPython interpreter embedded in gridexp-executor, set up as
// docs/executor.md ("The child process") says: it is the environment gridexp is installed in
// (sys.prefix, site-packages and sys.executable of the `python` beside the executor),
// sys.argv is ["experiment.py"], stdio is unbuffered, Python's SIGINT handler is installed and
// the working directory is first on sys.path.
//
// One PythonRuntime per process, ever (CPython does not restart cleanly). The thread that
// starts it holds the GIL afterwards, and must be the one that destroys it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include <pybind11/embed.h>

#include "common/status.h"

namespace gridexp {

// The interpreter CMake's Python_EXECUTABLE named when the executor was built.
std::filesystem::path build_python_executable();

// The python the executor runs as: `python` or `python3` in the directory of
// `executor_binary` (a venv's bin/) when there is one, else build_python_executable().
std::filesystem::path find_python_executable(const std::filesystem::path& executor_binary);

class PythonRuntime {
 public:
  // Starts the interpreter as `python_executable`, with `workdir` first on sys.path. Fails
  // when the interpreter cannot start (say, no standard library found from that program).
  static Result<std::unique_ptr<PythonRuntime>> start(
      const std::filesystem::path& python_executable, const std::filesystem::path& workdir);

  // Finalizes the interpreter: atexit handlers run and non-daemon threads are joined.
  ~PythonRuntime();
  PythonRuntime(const PythonRuntime&) = delete;
  PythonRuntime& operator=(const PythonRuntime&) = delete;

 private:
  PythonRuntime() = default;

  std::optional<pybind11::scoped_interpreter> interpreter_;
};

}  // namespace gridexp
