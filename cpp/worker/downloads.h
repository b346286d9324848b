// Downloads of the server's worker files (GET /api/v1/files/<name>: scripts.zip, data.zip)
// into a local cache, and their extraction into the worker's working directory.
//
// The cache directory holds, per name, the verified file as <sha256><extension> (for example
// cache/3f…9a.zip), a pointer <name>.sha256 naming the current one, and at most one partial
// download <name>.<sha256>.part. A fetch sends If-None-Match with the cached file's ETag (a 304
// costs no transfer), resumes a partial download with Range + If-Range (also one a previous
// process left behind), verifies that the SHA-256 of the whole file equals the ETag and only
// then renames it into the cache, and removes the version it replaced.
//
// Connection failures, 5xx, 408 and 429 answers (kUnavailable) and corrupt transfers are retried
// as the RetryPolicy says: capped exponential backoff, until its sleep returns false. An attempt
// that made progress (bytes appended to the partial file) resumes at once with the backoff
// reset. 404 is kNotFound, 401 kUnauthorized; both are final.
//
// A Downloader is used by one thread at a time, and its cache directory (like the workdir and
// state directory given to fetch_and_extract) belongs to that one Downloader.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/file_system.h"
#include "common/status.h"
#include "worker/archive.h"
#include "worker/server_connection.h"

namespace gridexp {

struct CachedFile {
  std::filesystem::path path;  // cache_directory / (<sha256> + extension of the name)
  std::string sha256;          // 64 lowercase hex digits, verified
  bool downloaded = false;     // false: the server answered 304 and the cached copy stands
};

class Downloader {
 public:
  // `base_url` is scheme, host and port ("http://10.0.0.5:8080"); `password` goes out as
  // "Authorization: Bearer <password>" (none when empty).
  Downloader(std::string base_url, std::string password, std::filesystem::path cache_directory,
             RetryPolicy retry, FileSystem& fs = default_file_system());

  // Makes the cache hold the server's current `name` (a plain file name such as "data.zip").
  // kNotFound when the server has no such file, kUnauthorized when it refuses the password,
  // kUnavailable (or kIoError for a corrupt transfer) when the retry policy gave up, kIoError
  // when the disk fails.
  Result<CachedFile> fetch(std::string_view name);

 private:
  std::string base_url_;
  std::string password_;
  std::filesystem::path cache_directory_;
  RetryPolicy retry_;
  FileSystem& fs_;
};

// Fetches `name` and extracts it into `workdir`, unless the archive with that SHA-256 was the
// last one extracted there: a marker <state_directory>/<name>.extracted records it after each
// successful extraction. True when it extracted. When `state_directory` lies inside `workdir`,
// an archive that would write into it is refused. Errors as Downloader::fetch and extract_zip.
Result<bool> fetch_and_extract(Downloader& downloader, std::string_view name,
                               const std::filesystem::path& workdir,
                               const std::filesystem::path& state_directory,
                               const ExtractLimits& limits, FileSystem& fs = default_file_system());

}  // namespace gridexp
