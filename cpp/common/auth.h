// Password checks for every HTTP route but the health check.
//
// A request authenticates with `Authorization: Bearer <password>` or HTTP Basic with any user
// name and the password (so a browser can log in). Comparison takes the same time whatever
// the guess, so the password cannot be learned by timing. Stateless and thread-safe.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace gridexp {

// The secret carried by an Authorization header value: the Bearer token, or the password
// part of Basic credentials. Empty when the header is absent, malformed or another scheme.
std::optional<std::string> credential_from_authorization(std::string_view header_value);

// Compares in time that depends only on the lengths, never on where the inputs differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// True when `header_value` carries exactly `password`.
bool authorization_matches(std::string_view header_value, std::string_view password);

// A fresh password: 24 characters from [A-Za-z0-9], about 142 bits of entropy.
std::string generate_password();

std::optional<std::string> base64_decode(std::string_view text);

// The password kept in a file: its first line without trailing blanks. An unreadable file or
// an empty first line is an error naming the file.
Result<std::string> read_password_file(const std::filesystem::path& path);

}  // namespace gridexp
