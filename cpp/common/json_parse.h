// parse_json: the one way gridexp parses JSON that comes from outside (request bodies).
//
// nlohmann::json builds any document, however deep, but dumping, copying and comparing one
// recurse once per level: a 200 KB body of 100,000 nested brackets overflows the stack. This
// parser counts the nesting as it goes and stops at the first container deeper than
// `max_depth`, before building it. Every failure (a syntax error, invalid UTF-8, a number out
// of range such as 1e400, too deep) is Status::invalid_argument with a message that says what
// and where; nothing throws.
//
// Depth counts containers: a scalar is depth 0, `[]` and `{}` depth 1, `{"a": [1]}` depth 2.
// Stateless; safe from any thread.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace gridexp {

// The executor refuses results nested deeper than this (cpp/executor/python_json.cpp).
inline constexpr int kMaxJsonDepth = 200;
// A message (a request body, an answer, an executor event or command, an outbox entry) wraps
// such values in a few levels of its own ({"points": [{"values": ...}]}).
inline constexpr int kMaxMessageJsonDepth = kMaxJsonDepth + 8;

Result<nlohmann::json> parse_json(std::string_view text, int max_depth = kMaxJsonDepth);

}  // namespace gridexp
