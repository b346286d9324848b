// Describing Python exceptions for the supervisor's fatal and failed events.
#include "executor/python_errors.h"

#include <optional>
#include <string_view>

namespace gridexp {
namespace {

namespace py = pybind11;

// str(object), or `fallback` when str() itself raises (a broken __str__ must not hide the
// exception being described).
std::string str_or(py::handle object, std::string_view fallback) {
  try {
    return py::str(object).cast<std::string>();
  } catch (const py::error_already_set&) {
    return std::string(fallback);
  } catch (const py::cast_error&) {
    return std::string(fallback);
  }
}

std::string qualified_type_name(py::handle type) {
  std::string name = str_or(py::getattr(type, "__qualname__", py::none()), "<unknown type>");
  std::string module = str_or(py::getattr(type, "__module__", py::none()), "");
  if (module.empty() || module == "builtins" || module == "__main__") return name;
  return module + "." + name;
}

// `file` relative to `workdir`; nullopt when it is outside, or no real file ("<string>",
// "<frozen importlib._bootstrap>").
std::optional<std::string> relative_to(const std::string& file,
                                       const std::filesystem::path& workdir) {
  if (file.empty() || file.front() == '<') return std::nullopt;
  std::filesystem::path path(file);
  if (path.is_relative()) path = workdir / path;
  std::filesystem::path relative = path.lexically_normal().lexically_relative(workdir);
  if (relative.empty() || *relative.begin() == "..") return std::nullopt;
  return relative.string();
}

}  // namespace

std::string exception_summary(const py::error_already_set& error) {
  std::string name = qualified_type_name(error.type());
  std::string message = str_or(error.value(), "<exception str() failed>");
  return message.empty() ? name : name + ": " + message;
}

bool is_cuda_out_of_memory(const py::error_already_set& error) {
  try {
    py::dict modules = py::module_::import("sys").attr("modules");
    if (modules.contains("torch")) {
      py::object torch = modules["torch"];
      py::object cuda = py::getattr(torch, "cuda", py::none());
      for (py::object type : {py::getattr(torch, "OutOfMemoryError", py::none()),
                              py::getattr(cuda, "OutOfMemoryError", py::none())}) {
        if (!PyType_Check(type.ptr())) continue;
        int is_instance = PyObject_IsInstance(error.value().ptr(), type.ptr());
        if (is_instance < 0) PyErr_Clear();
        if (is_instance > 0) return true;
      }
    }
    return error.matches(PyExc_RuntimeError) &&
           str_or(error.value(), "").find("CUDA out of memory") != std::string::npos;
  } catch (const py::error_already_set&) {
    return false;
  }
}

std::string format_traceback(const py::error_already_set& error) {
  try {
    py::object lines = py::module_::import("traceback")
                           .attr("format_exception")(error.type(), error.value(),
                                                     error.trace() ? error.trace() : py::none());
    return py::str("").attr("join")(lines).cast<std::string>();
  } catch (const py::error_already_set&) {
    return exception_summary(error) + "\n";
  }
}

CodeLocation locate_in_user_code(const py::error_already_set& error,
                                 const std::filesystem::path& workdir) {
  try {
    if (error.matches(PyExc_SyntaxError)) {
      py::object filename = py::getattr(error.value(), "filename", py::none());
      py::object lineno = py::getattr(error.value(), "lineno", py::none());
      CodeLocation location;
      if (!filename.is_none()) {
        std::string file = str_or(filename, "");
        location.file = relative_to(file, workdir).value_or(file);
      }
      if (py::isinstance<py::int_>(lineno)) location.line = lineno.cast<int>();
      return location;
    }
    CodeLocation innermost;
    for (py::object frame = error.trace() ? error.trace() : py::none(); !frame.is_none();
         frame = frame.attr("tb_next")) {
      std::string file = str_or(frame.attr("tb_frame").attr("f_code").attr("co_filename"), "");
      if (std::optional<std::string> relative = relative_to(file, workdir)) {
        innermost = {relative, frame.attr("tb_lineno").cast<int>()};
      }
    }
    return innermost;
  } catch (const py::error_already_set&) {
    return {};
  } catch (const py::cast_error&) {
    return {};
  }
}

}  // namespace gridexp
