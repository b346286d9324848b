// What the supervisor is told about a Python exception: its "Type: message" summary, the
// traceback as Python prints it, and the place in the user's code it came from.
//
// Every function here needs the GIL held by the calling thread; none of them raises.
#pragma once

#include <filesystem>
#include <string>

#include <pybind11/pybind11.h>

#include "executor/protocol.h"

namespace gridexp {

// "ValueError: bad batch"; the bare type when the message is empty; types outside builtins
// carry their module, as in tracebacks ("torch.OutOfMemoryError: CUDA out of memory").
std::string exception_summary(const pybind11::error_already_set& error);

// Whether the exception is CUDA running out of memory: an instance of torch.OutOfMemoryError
// or torch.cuda.OutOfMemoryError (looked up in sys.modules: torch is never imported here),
// or a RuntimeError whose message contains "CUDA out of memory" (older PyTorch).
bool is_cuda_out_of_memory(const pybind11::error_already_set& error);

// "Traceback (most recent call last): ...", ending with the summary line.
std::string format_traceback(const pybind11::error_already_set& error);

// A SyntaxError's own file and line; otherwise the innermost traceback frame whose file is
// inside `workdir`. Files inside `workdir` are named relative to it.
CodeLocation locate_in_user_code(const pybind11::error_already_set& error,
                                 const std::filesystem::path& workdir);

}  // namespace gridexp
