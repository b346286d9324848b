// URL helpers for the paths gridexp's clients build.
//
// encode_path_segment() percent-encodes one path segment (an experiment name, a trial id) so
// that it reaches the server as one segment whatever it contains: RFC 3986's unreserved
// characters (A-Z a-z 0-9 - . _ ~) pass, every other byte, '/' and '%' included, becomes %XX
// (upper-case hex; UTF-8 is encoded byte by byte). Pure functions: safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace gridexp {

std::string encode_path_segment(std::string_view segment);

}  // namespace gridexp
