// ExperimentFiles: the archives workers download, scripts.zip and data.zip.
//
// data.zip is served from the experiment directory as it is. scripts.zip is the directory's
// own scripts.zip when there is one; otherwise the server builds one from the directory's
// top-level *.py files, deterministically (sorted names, fixed timestamps and permissions:
// the same sources give the same bytes and the same SHA-256), keeps it in the state directory,
// and rebuilds it whenever one of those files changes. SHA-256s are cached by size and
// modification time. Only these two fixed names are ever served: nothing a client sends
// becomes a path. Safe from any thread.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include "common/file_system.h"
#include "common/status.h"
#include "server/http_util.h"

namespace gridexp {

// Writes a deterministic zip of `sources` (stored under their file names) to `destination`.
Status write_deterministic_zip(const std::vector<std::filesystem::path>& sources,
                               const std::filesystem::path& destination);

class ExperimentFiles {
 public:
  ExperimentFiles(std::filesystem::path experiment_dir, std::filesystem::path state_dir,
                  FileSystem& fs);

  // kNotFound when there is neither a scripts.zip nor any *.py file.
  Result<FileToServe> scripts_zip();
  // kNotFound when the directory has no data.zip.
  Result<FileToServe> data_zip();

 private:
  struct Fingerprint {
    std::uintmax_t size = 0;
    std::filesystem::file_time_type modified;
    bool operator==(const Fingerprint&) const = default;
  };
  Result<std::string> cached_sha256(const std::filesystem::path& path);
  Result<FileToServe> serve_as_is(const std::filesystem::path& path, const char* name);
  std::string python_sources_fingerprint(std::vector<std::filesystem::path>* sources) const;

  std::filesystem::path experiment_dir_;
  std::filesystem::path state_dir_;
  FileSystem& fs_;
  std::mutex mutex_;
  std::map<std::filesystem::path, std::pair<Fingerprint, std::string>> sha_cache_;
  std::string built_scripts_fingerprint_;
};

}  // namespace gridexp
