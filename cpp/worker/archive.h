// Safe extraction of the zip archives the server hands out (scripts.zip, data.zip) into a
// worker's working directory.
//
// An archive comes from the network, so nothing in it is trusted. Before anything is written,
// every entry is checked: a relative path of valid UTF-8 made of plain components (no leading
// "/", no "." or "..", no backslash, no drive letter), a regular file or a directory (never a
// symlink or a device), not encrypted, in a compression method libzip can read, no two entries
// naming the same path, no entry whose path passes through an existing symlink or non-directory
// in the destination, none inside a reserved path, at most `max_entries` entries and at most
// `max_total_bytes` declared uncompressed. Declared sizes can lie (zip bombs), so the bytes
// actually inflated are counted too and an entry that yields more or fewer bytes than it declares
// fails the extraction. libzip turns a NUL inside a stored name into a space while reading it, so
// the name checked is exactly the name written.
//
// Files are inflated to temporary names beside their targets through the FileSystem seam and
// renamed into place only once every entry has been inflated, so a reader never sees a
// half-written file and a refused or failed archive leaves the destination as it was (the
// temporaries and any directories created for them are removed). Only a failing rename, after
// every entry was read successfully, can leave some files replaced and others not. Files of the
// destination that the archive does not name are left alone.
//
// Permissions: a file keeps its owner/group/other read and execute bits from a Unix archive,
// never setuid, setgid, sticky or group/other write, and is always owner-readable and
// -writable (0644 when the archive has no Unix modes); directories get the process default.
//
// Stateless; safe from any thread, although two extractions into one destination at once
// would race each other.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/file_system.h"
#include "common/status.h"

namespace gridexp {

struct ExtractLimits {
  std::uint64_t max_entries = 100'000;
  std::uint64_t max_total_bytes = std::uint64_t{32} << 30;  // uncompressed, all entries
  // Relative paths ("a/b") that no entry may name or lie under: the worker's own state.
  std::vector<std::string> reserved_paths;
};

// Extracts `archive` into `destination`, creating it if needed. A refused archive is
// kInvalidArgument (kTooLarge over a limit); a disk or libzip failure is kIoError. Every error
// names the archive and, where there is one, the offending entry.
Status extract_zip(const std::filesystem::path& archive, const std::filesystem::path& destination,
                   const ExtractLimits& limits, FileSystem& fs = default_file_system());

}  // namespace gridexp
