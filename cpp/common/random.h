// Unpredictable identifiers from the operating system's CSPRNG (OpenSSL RAND_bytes):
// lease tokens, worker ids and generated passwords. Safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>

namespace gridexp {

// `bytes` random bytes as 2*bytes lowercase hex digits. Aborts if the CSPRNG fails, since
// continuing with a guessable token would be a security hole.
std::string random_hex(std::size_t bytes);

}  // namespace gridexp
