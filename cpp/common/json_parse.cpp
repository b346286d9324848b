#include "common/json_parse.h"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace gridexp {
namespace {

using nlohmann::json;

// nlohmann's messages start with "[json.exception.parse_error.101] ": the reader needs what
// follows.
std::string without_exception_tag(const char* what) {
  std::string message = what;
  if (message.starts_with("[json.exception.")) {
    std::size_t end = message.find("] ");
    if (end != std::string::npos) message.erase(0, end + 2);
  }
  return message;
}

// A SAX handler that builds the document as nlohmann's own DOM parser does, and refuses a
// container nested deeper than the limit before building it. Errors are recorded, not thrown.
class DepthLimitedBuilder {
 public:
  explicit DepthLimitedBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return add(nullptr); }
  bool boolean(bool value) { return add(value); }
  bool number_integer(json::number_integer_t value) { return add(value); }
  bool number_unsigned(json::number_unsigned_t value) { return add(value); }
  bool number_float(json::number_float_t value, const json::string_t&) { return add(value); }
  bool string(json::string_t& value) { return add(std::move(value)); }
  bool binary(json::binary_t& value) { return add(json::binary(std::move(value))); }

  bool start_object(std::size_t) { return open(json::value_t::object); }
  bool key(json::string_t& name) {
    object_member_ = &(*open_containers_.back())[std::move(name)];
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(json::value_t::array); }
  bool end_array() { return close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& error) {
    error_ = "malformed JSON: " + without_exception_tag(error.what());
    if (error.id == 406) error_ += " at byte " + std::to_string(position);  // number overflow
    return false;
  }

  json& root() { return root_; }
  const std::string& error() const { return error_; }

 private:
  // Places `value` where the document's next value goes; returns where it now lives.
  json* place(json value) {
    if (open_containers_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *open_containers_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    *object_member_ = std::move(value);
    return object_member_;
  }
  template <typename Value>
  bool add(Value&& value) {
    place(json(std::forward<Value>(value)));
    return true;
  }
  bool open(json::value_t type) {
    if (static_cast<int>(open_containers_.size()) >= max_depth_) {
      error_ = "JSON nested more than " + std::to_string(max_depth_) + " levels deep";
      return false;
    }
    // A container is only ever added to while it is the innermost one open, so the pointers
    // to the outer ones stay valid.
    open_containers_.push_back(place(json(type)));
    return true;
  }
  bool close() {
    open_containers_.pop_back();
    return true;
  }

  const int max_depth_;
  json root_;
  std::vector<json*> open_containers_;
  json* object_member_ = nullptr;
  std::string error_;
};

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, int max_depth) {
  // nlohmann's own words for this differ between its versions (Debian 12's 3.11.2, 13's 3.11.3).
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return Status::invalid_argument("malformed JSON: the input is empty");
  }
  DepthLimitedBuilder builder(max_depth);
  // With a handler that throws nothing, nlohmann's SAX parse reports every error to it.
  if (!json::sax_parse(text.begin(), text.end(), &builder)) {
    return Status::invalid_argument(builder.error().empty() ? "malformed JSON" : builder.error());
  }
  return std::move(builder.root());
}

}  // namespace gridexp
