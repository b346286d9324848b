// Conversion between Python objects and JSON for the executor's messages (docs/executor.md,
// "Running a trial", step 3): the user's results and metrics become JSON; the config and the
// hyperparameters become plain Python objects.
//
// Every function here needs the GIL held by the calling thread.
#pragma once

#include <string>

#include <pybind11/pybind11.h>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

// Converts `object` to JSON, recursively: dict, list, tuple, str, bool, None, int within int64
// or uint64, float (NaN, inf and -inf become the strings "NaN", "Infinity", "-Infinity"), numpy
// and torch scalars, arrays and tensors (by their .tolist(), which gives plain values; .item()
// for a type that has only that), datetime.date/.datetime/.time as ISO 8601 strings
// (.isoformat()) and any pathlib.PurePath as its str(). numpy and torch are recognized by their
// types' module, so neither need be installed; nothing is imported.
// Dict keys become strings as json.dumps makes them: 1 -> "1", 1.5 -> "1.5", True -> "true",
// None -> "null", nan -> "NaN"; numpy and torch scalar keys by their .item(), date, time and
// path keys as their values are. Two keys of one dict that become the same string ({1: a,
// "1": b}, which json.dumps would write as a duplicate key) are refused, naming both, rather
// than one of them silently lost.
// Anything else is kInvalidArgument, its message naming where the object sits below `root`:
//   "results['curve'][3] is a set (builtins.set), which cannot be sent as JSON".
// A str with lone surrogates is sent with them backslash-escaped.
Result<nlohmann::json> python_to_json(pybind11::handle object, const std::string& root);

// The plain Python objects json.loads would make of `value`.
pybind11::object json_to_python(const nlohmann::json& value);

}  // namespace gridexp
