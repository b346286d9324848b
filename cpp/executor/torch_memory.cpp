// See torch_memory.h.
#include "executor/torch_memory.h"

#include <algorithm>
#include <cstdio>

#include "executor/python_errors.h"

namespace gridexp {
namespace {

namespace py = pybind11;

void report(const char* what, const py::error_already_set& error) {
  std::fprintf(stderr, "gridexp-executor: %s failed: %s\n", what, exception_summary(error).c_str());
}

}  // namespace

py::object TorchCudaMemory::initialized_cuda() {
  py::dict modules = py::module_::import("sys").attr("modules");
  if (!modules.contains("torch")) return py::none();
  py::object cuda = modules["torch"].attr("cuda");
  if (!cuda.attr("is_initialized")().cast<bool>()) return py::none();
  return cuda;
}

template <typename PerDevice>
std::optional<std::int64_t> TorchCudaMemory::over_devices(const char* what, bool take_max,
                                                          PerDevice per_device) {
  try {
    py::object cuda = initialized_cuda();
    if (cuda.is_none()) return std::nullopt;
    const int devices = cuda.attr("device_count")().cast<int>();
    std::int64_t total = 0;
    for (int device = 0; device < devices; ++device) {
      std::int64_t bytes = per_device(cuda, device);
      total = take_max ? std::max(total, bytes) : total + bytes;
    }
    return total;
  } catch (const py::error_already_set& error) {
    report(what, error);
    return std::nullopt;
  }
}

std::optional<std::int64_t> TorchCudaMemory::allocated_bytes() {
  return over_devices("reading torch.cuda.memory_allocated()", false,
                      [](py::handle cuda, int device) {
                        return cuda.attr("memory_allocated")(device).cast<std::int64_t>();
                      });
}

void TorchCudaMemory::collect_garbage() {
  try {
    py::module_::import("gc").attr("collect")();
  } catch (const py::error_already_set& error) {
    report("gc.collect() after the trial", error);
  }
}

void TorchCudaMemory::empty_cache() {
  try {
    py::object cuda = initialized_cuda();
    if (!cuda.is_none()) cuda.attr("empty_cache")();
  } catch (const py::error_already_set& error) {
    report("torch.cuda.empty_cache() after the trial", error);
  }
}

void TorchCudaMemory::reset_peaks() {
  over_devices("torch.cuda.reset_peak_memory_stats()", false,
               [](py::handle cuda, int device) -> std::int64_t {
                 cuda.attr("reset_peak_memory_stats")(device);
                 return 0;
               });
}

std::optional<std::int64_t> TorchCudaMemory::peak_bytes() {
  return over_devices("reading torch.cuda.max_memory_allocated()", true,
                      [](py::handle cuda, int device) {
                        return cuda.attr("max_memory_allocated")(device).cast<std::int64_t>();
                      });
}

}  // namespace gridexp
