// Status and Result<T>: errors as values, never exceptions across module boundaries. Both are
// [[nodiscard]]: an outcome is handled, or ignored in writing with ignore_outcome().
//
// A Status carries a Code and a human-readable message. Result<T> holds either a T or a
// non-OK Status. Both are plain values: copying is safe, and const methods may be called
// from several threads at once without synchronization.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace gridexp {

enum class Code {
  kOk,
  kInvalidArgument,  // the caller sent something malformed (HTTP 400)
  kNotFound,         // no such trial, experiment or file (HTTP 404)
  kConflict,         // a lease or state precondition failed (HTTP 409)
  kTooLarge,         // a body or file over its limit (HTTP 413)
  kUnauthorized,     // missing or wrong password (HTTP 401)
  kUnavailable,      // the server could not be reached or answered 5xx: try again later
  kIoError,          // the disk or the database failed (HTTP 500)
  kInternal,         // a broken invariant (HTTP 500)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  static Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status too_large(std::string m) { return {Code::kTooLarge, std::move(m)}; }
  static Status unauthorized(std::string m) { return {Code::kUnauthorized, std::move(m)}; }
  static Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status io_error(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status internal(std::string m) { return {Code::kInternal, std::move(m)}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.is_ok());
  }

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// A deliberately ignored outcome: a best-effort step (a clean-up, a courtesy notice) whose
// failure changes nothing for the caller. Write the reason beside the call.
inline void ignore_outcome(const Status&) {}
template <typename T>
inline void ignore_outcome(const Result<T>&) {}

}  // namespace gridexp
