// PythonRuntime: starting and finalizing the embedded interpreter.
#include "executor/python_runtime.h"

#include <unistd.h>

#include <exception>
#include <string>
#include <system_error>

#include "executor/python_errors.h"

namespace gridexp {
namespace {

namespace py = pybind11;

bool is_executable_file(const std::filesystem::path& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

std::filesystem::path build_python_executable() { return GRIDEXP_BUILD_PYTHON_EXECUTABLE; }

std::filesystem::path find_python_executable(const std::filesystem::path& executor_binary) {
  for (const char* name : {"python", "python3"}) {
    std::filesystem::path candidate = executor_binary.parent_path() / name;
    if (is_executable_file(candidate)) return candidate;
  }
  return build_python_executable();
}

Result<std::unique_ptr<PythonRuntime>> PythonRuntime::start(
    const std::filesystem::path& python_executable, const std::filesystem::path& workdir) {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.parse_argv = 0;  // sys.argv is the user's, not options for the interpreter
  config.buffered_stdio = 0;
  config.install_signal_handlers = 1;
  // Python derives sys.prefix (a venv's, through its pyvenv.cfg) and sys.executable from the
  // program name, exactly as when that python is run by its full path.
  PyStatus status =
      PyConfig_SetBytesString(&config, &config.program_name, python_executable.c_str());
  if (PyStatus_Exception(status)) {
    PyConfig_Clear(&config);
    return Status::internal("cannot configure Python: " +
                            std::string(status.err_msg ? status.err_msg : "unknown error"));
  }
  const char* const argv[] = {"experiment.py"};
  std::unique_ptr<PythonRuntime> runtime(new PythonRuntime());
  try {
    // pybind11 clears `config`, whether the start succeeds or not.
    runtime->interpreter_.emplace(&config, 1, argv, /*add_program_dir_to_path=*/false);
  } catch (const std::exception& error) {
    return Status::internal("cannot start Python as " + python_executable.string() + ": " +
                            error.what());
  }
  try {
    py::module_::import("sys").attr("path").attr("insert")(0, workdir.string());
  } catch (const py::error_already_set& error) {
    return Status::internal("cannot set sys.path: " + exception_summary(error));
  }
  return runtime;
}

PythonRuntime::~PythonRuntime() = default;

}  // namespace gridexp

// LeakSanitizer reads this hook at exit. CPython never frees everything it allocated, even
// after finalization (interned strings, extension modules' state, pybind11 function records
// in torch), so every process that embeds it would "leak". Leaks allocated by libpython or
// by the extension modules the tests import are not ours to fix; our own still show.
#if defined(__SANITIZE_ADDRESS__)
extern "C" __attribute__((visibility("default"))) const char* __lsan_default_suppressions() {
  return "leak:libpython3\n"
         "leak:libtorch_python\n"
         "leak:_multiarray_umath\n";
}
#endif
