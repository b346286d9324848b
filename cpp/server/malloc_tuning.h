// Malloc settings for gridexp-server that glibc reads only from the environment.
//
// glibc's per-thread cache (tcache) keeps at most 7 freed blocks of each size; a request
// allocates and frees more of a size than that (cpp-httplib's headers, JSON, the store's
// rows), so the rest go back through the arenas and their locks. Keeping 64 measured +6%
// trials/s with 16 simulated workers (docs/performance.md, "Malloc's per-thread cache").
// glibc takes glibc.malloc.tcache_count from GLIBC_TUNABLES only when a program starts, so
// the server executes itself again, once, with it added.
//
// Not thread-safe: call before any thread starts.
#pragma once

#include <string>

namespace gridexp {

// GLIBC_TUNABLES as the server runs with: `current` (null when unset) with the server's
// settings appended; empty when there is nothing to add (they, or the user's own values for
// them, are already there).
std::string tunables_with_server_malloc_settings(const char* current);

// Executes /proc/self/exe again with the same arguments and GLIBC_TUNABLES from
// tunables_with_server_malloc_settings(), unless it adds nothing; returns only if it need not
// or cannot (then the server runs with glibc's defaults).
void restart_with_server_malloc_settings(char** argv);

}  // namespace gridexp
