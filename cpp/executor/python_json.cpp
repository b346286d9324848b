// Python objects to JSON and back, with errors that say where an unsendable value sits.
#include "executor/python_json.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

#include "executor/python_errors.h"

namespace gridexp {
namespace {

namespace py = pybind11;
using nlohmann::json;

// Deeper than this is almost surely a list or dict that contains itself.
constexpr int kMaxDepth = 200;

// One step of the path from the root to the value being converted, kept on the C++ stack and
// spelled out only when an error needs it.
struct PathStep {
  const PathStep* parent;
  py::handle key;  // a dict key, or null for a list index
  std::size_t index = 0;
};

std::string describe_path(const std::string& root, const PathStep* step) {
  if (step == nullptr) return root;
  std::string parent = describe_path(root, step->parent);
  if (!step->key) return parent + "[" + std::to_string(step->index) + "]";
  return parent + "[" + py::repr(step->key).cast<std::string>() + "]";
}

py::handle type_of(py::handle object) { return reinterpret_cast<PyObject*>(Py_TYPE(object.ptr())); }

std::string qualified_type_name(py::handle object) {
  py::handle type = type_of(object);
  std::string module = py::str(type.attr("__module__")).cast<std::string>();
  return module + "." + py::str(type.attr("__qualname__")).cast<std::string>();
}

std::string with_article(const std::string& noun) {
  bool vowel = !noun.empty() && std::string_view("aeiouAEIOU").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

// Whether `object` is an instance of `module_name`.`type_name`, looked up in sys.modules
// only: a type whose module was never imported can have no instances, and converting results
// must not import anything.
bool is_instance_of(py::handle object, const char* module_name, const char* type_name) {
  PyObject* module = PyDict_GetItemString(PyImport_GetModuleDict(), module_name);  // borrowed
  if (module == nullptr) return false;
  py::object type = py::getattr(module, type_name, py::none());
  if (!PyType_Check(type.ptr())) return false;
  int is_instance = PyObject_IsInstance(object.ptr(), type.ptr());
  if (is_instance < 0) throw py::error_already_set();
  return is_instance == 1;
}

// The string a date, time or path stands for (ISO 8601 for datetime.date, .datetime and .time,
// and their subclasses such as pandas.Timestamp; str() for any pathlib.PurePath), or nullopt
// for any other object. json.dumps refuses these; every analysis tool reads the strings.
std::optional<std::string> date_time_or_path_string(py::handle object) {
  if (is_instance_of(object, "datetime", "date") || is_instance_of(object, "datetime", "time")) {
    return py::str(object.attr("isoformat")()).cast<std::string>();
  }
  if (is_instance_of(object, "pathlib", "PurePath")) return py::str(object).cast<std::string>();
  return std::nullopt;
}

// numpy and torch values convert through their own .item() / .tolist(); recognizing them by
// their type's top-level module spares importing either.
bool is_numpy_or_torch(py::handle object) {
  py::object module = py::getattr(type_of(object), "__module__", py::none());
  if (!py::isinstance<py::str>(module)) return false;
  std::string name = module.cast<std::string>();
  std::string_view top_level = std::string_view(name).substr(0, name.find('.'));
  return top_level == "numpy" || top_level == "torch";
}

std::string utf8(py::handle text) {
  Py_ssize_t size = 0;
  if (const char* data = PyUnicode_AsUTF8AndSize(text.ptr(), &size)) {
    return std::string(data, static_cast<std::size_t>(size));
  }
  PyErr_Clear();  // lone surrogates, e.g. from os.fsdecode of a file name
  auto encoded = py::reinterpret_steal<py::bytes>(
      PyUnicode_AsEncodedString(text.ptr(), "utf-8", "backslashreplace"));
  if (!encoded) throw py::error_already_set();
  return encoded.cast<std::string>();
}

class Converter {
 public:
  explicit Converter(const std::string& root) : root_(root) {}

  Result<json> convert(py::handle object, const PathStep* path, int depth) {
    if (depth > kMaxDepth) {
      return error(path, "is nested more than " + std::to_string(kMaxDepth) +
                             " levels deep (does it contain itself?)");
    }
    if (object.is_none()) return json(nullptr);
    if (PyBool_Check(object.ptr())) return json(object.ptr() == Py_True);
    if (PyLong_Check(object.ptr())) return convert_int(object, path);
    if (PyFloat_Check(object.ptr())) return convert_float(PyFloat_AS_DOUBLE(object.ptr()));
    if (PyUnicode_Check(object.ptr())) return json(utf8(object));
    if (PyDict_Check(object.ptr())) return convert_dict(object, path, depth);
    if (PyList_Check(object.ptr()) || PyTuple_Check(object.ptr())) {
      return convert_sequence(object, path, depth);
    }
    if (is_numpy_or_torch(object)) return convert_numpy_or_torch(object, path, depth);
    if (std::optional<std::string> text = date_time_or_path_string(object)) return json(*text);
    return unsupported(object, path);
  }

 private:
  Status error(const PathStep* path, const std::string& what) const {
    return Status::invalid_argument(describe_path(root_, path) + " " + what);
  }

  Status unsupported(py::handle object, const PathStep* path) const {
    std::string name = py::str(type_of(object).attr("__name__")).cast<std::string>();
    return error(path, "is " + with_article(name) + " (" + qualified_type_name(object) +
                           "), which cannot be sent as JSON");
  }

  Result<json> convert_int(py::handle object, const PathStep* path) const {
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(object.ptr(), &overflow);
    if (overflow == 0) return json(static_cast<std::int64_t>(value));
    if (overflow > 0) {
      unsigned long long unsigned_value = PyLong_AsUnsignedLongLong(object.ptr());
      if (!PyErr_Occurred()) return json(static_cast<std::uint64_t>(unsigned_value));
      PyErr_Clear();
    }
    return error(path, "is an int that does not fit in 64 bits, which cannot be sent as JSON");
  }

  static json convert_float(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
    return value;
  }

  // The JSON key json.dumps makes of `key`: a str as it is; an int or float as int.__repr__ or
  // float.__repr__ spell it (1, 1.5, 1e+100, NaN, Infinity), True as "true", None as "null".
  // Beyond json.dumps: numpy and torch scalars by their .item(), dates, times and paths as
  // their values are. Any other key (a tuple, say) is kInvalidArgument.
  Result<std::string> key_string(py::handle key, const PathStep* path,
                                 bool plain_only = false) const {
    PyObject* raw = key.ptr();
    if (PyUnicode_Check(raw)) return utf8(key);
    if (PyBool_Check(raw)) return std::string(raw == Py_True ? "true" : "false");
    if (key.is_none()) return std::string("null");
    if (PyLong_Check(raw)) return repr_as(&PyLong_Type, key);
    if (PyFloat_Check(raw)) {
      double value = PyFloat_AS_DOUBLE(raw);
      if (std::isnan(value) || std::isinf(value)) return convert_float(value).get<std::string>();
      return repr_as(&PyFloat_Type, key);
    }
    if (!plain_only && is_numpy_or_torch(key) && py::hasattr(key, "item")) {
      return key_string(key.attr("item")(), path, /*plain_only=*/true);
    }
    if (std::optional<std::string> text = date_time_or_path_string(key)) return *text;
    return error(path, "has a key " + py::repr(key).cast<std::string>() + " (" +
                           qualified_type_name(key) +
                           "); JSON object keys must be str, int, float, bool or None");
  }

  // `object` spelled by `type`'s own repr, as json.dumps does for subclasses (an IntEnum key is
  // its number, not its name).
  static std::string repr_as(PyTypeObject* type, py::handle object) {
    auto text = py::reinterpret_steal<py::object>(type->tp_repr(object.ptr()));
    if (!text) throw py::error_already_set();
    return text.cast<std::string>();
  }

  // Two keys of one dict that become the same JSON key (1 and "1", None and "null"): json.dumps
  // would write the key twice and a reader keep one of them, so neither is silently dropped.
  Status colliding_keys(py::handle items, std::size_t later, const std::string& key_text,
                        const PathStep* path) const {
    py::handle later_key = PyTuple_GET_ITEM(PyList_GET_ITEM(items.ptr(), later), 0);
    for (std::size_t i = 0; i < later; ++i) {
      py::handle earlier_key = PyTuple_GET_ITEM(PyList_GET_ITEM(items.ptr(), i), 0);
      Result<std::string> earlier_text = key_string(earlier_key, path);
      if (!earlier_text || *earlier_text != key_text) continue;
      return error(path, "has the keys " + py::repr(earlier_key).cast<std::string>() + " (" +
                             qualified_type_name(earlier_key) + ") and " +
                             py::repr(later_key).cast<std::string>() + " (" +
                             qualified_type_name(later_key) + "), which both become the JSON key " +
                             json(key_text).dump());
    }
    return error(path, "has two keys that become the JSON key " + json(key_text).dump());
  }

  Result<json> convert_dict(py::handle object, const PathStep* path, int depth) {
    json result = json::object();
    // Copied items: converting a value may run Python code (.tolist()) that changes the dict.
    py::list items = py::reinterpret_steal<py::list>(PyDict_Items(object.ptr()));
    if (!items) throw py::error_already_set();
    json::object_t& members = result.get_ref<json::object_t&>();
    const auto size = static_cast<std::size_t>(PyList_GET_SIZE(items.ptr()));
    for (std::size_t i = 0; i < size; ++i) {
      py::handle item = PyList_GET_ITEM(items.ptr(), i);
      py::handle key = PyTuple_GET_ITEM(item.ptr(), 0);
      Result<std::string> key_text = key_string(key, path);
      if (!key_text) return key_text.status();
      if (members.count(*key_text) != 0) return colliding_keys(items, i, *key_text, path);
      PathStep step{path, key};
      Result<json> value = convert(PyTuple_GET_ITEM(item.ptr(), 1), &step, depth + 1);
      if (!value) return value.status();
      members.emplace(std::move(*key_text), std::move(*value));
    }
    return result;
  }

  Result<json> convert_sequence(py::handle object, const PathStep* path, int depth) {
    // A tuple is immutable; a list is copied, as a dict is, in case converting changes it.
    py::object items = PyTuple_Check(object.ptr())
                           ? py::reinterpret_borrow<py::object>(object)
                           : py::reinterpret_steal<py::object>(PySequence_Tuple(object.ptr()));
    if (!items) throw py::error_already_set();
    Py_ssize_t size = PyTuple_GET_SIZE(items.ptr());
    json result = json::array();
    result.get_ref<json::array_t&>().reserve(static_cast<std::size_t>(size));
    for (Py_ssize_t i = 0; i < size; ++i) {
      PathStep step{path, py::handle(), static_cast<std::size_t>(i)};
      Result<json> value = convert(PyTuple_GET_ITEM(items.ptr(), i), &step, depth + 1);
      if (!value) return value.status();
      result.push_back(std::move(*value));
    }
    return result;
  }

  Result<json> convert_numpy_or_torch(py::handle object, const PathStep* path, int depth) {
    const char* method = py::hasattr(object, "tolist") ? "tolist"
                         : py::hasattr(object, "item") ? "item"
                                                       : nullptr;
    if (method == nullptr) return unsupported(object, path);
    py::object plain;
    try {
      plain = object.attr(method)();
    } catch (const py::error_already_set& raised) {
      return error(path, "is " + with_article(qualified_type_name(object)) + " whose ." + method +
                             "() raised " + exception_summary(raised));
    }
    return convert(plain, path, depth + 1);
  }

  const std::string& root_;
};

}  // namespace

Result<json> python_to_json(py::handle object, const std::string& root) {
  try {
    return Converter(root).convert(object, nullptr, 0);
  } catch (const py::error_already_set& raised) {  // from a broken __repr__, say
    return Status::invalid_argument("converting " + root + " to JSON raised " +
                                    exception_summary(raised));
  }
}

py::object json_to_python(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return py::none();
    case json::value_t::boolean:
      return py::bool_(value.get<bool>());
    case json::value_t::number_integer:
      return py::int_(value.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return py::int_(value.get<std::uint64_t>());
    case json::value_t::number_float:
      return py::float_(value.get<double>());
    case json::value_t::string:
      return py::str(value.get_ref<const std::string&>());
    case json::value_t::binary:
      return py::bytes(std::string(value.get_binary().begin(), value.get_binary().end()));
    case json::value_t::array: {
      py::list list(value.size());
      for (std::size_t i = 0; i < value.size(); ++i) {
        list[i] = json_to_python(value[i]);
      }
      return list;
    }
    case json::value_t::object: {
      py::dict dict;
      for (const auto& [key, item] : value.items()) {
        dict[py::str(key)] = json_to_python(item);
      }
      return dict;
    }
  }
  return py::none();
}

}  // namespace gridexp
