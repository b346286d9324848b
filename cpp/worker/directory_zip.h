// A directory's contents as a zip (a checkpoint of kind directory: gridexp.checkpoint_dir()),
// and a fingerprint that says whether those contents changed.
//
// zip_directory() writes every regular file and directory below `directory` (relative names,
// Unix permission bits kept; symlinks, devices and sockets are left out) so that extract_zip
// (archive.h) unpacks it again. directory_fingerprint() lists the same entries with their
// sizes and modification times: two equal fingerprints mean nothing was added, removed or
// rewritten in between (as far as modification times tell).
//
// Stateless; safe from any thread, as long as nobody else writes the archive meanwhile.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace gridexp {

// Writes `archive` (replacing it); kIoError naming the entry that failed.
Status zip_directory(const std::filesystem::path& directory, const std::filesystem::path& archive);

// "" for a missing or empty directory.
std::string directory_fingerprint(const std::filesystem::path& directory);

}  // namespace gridexp
