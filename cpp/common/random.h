// Unpredictable identifiers from the operating system's CSPRNG (OpenSSL RAND_bytes) — lease
// tokens, worker ids, generated passwords — and the hex encoding they and digests use.
// Safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>

namespace gridexp {

// `size` bytes as 2*size lowercase hex digits.
std::string to_hex(const unsigned char* data, std::size_t size);

// `bytes` random bytes as 2*bytes lowercase hex digits. Aborts if the CSPRNG fails, since
// continuing with a guessable token would be a security hole.
std::string random_hex(std::size_t bytes);

}  // namespace gridexp
