#include "server/experiment_files.h"

#include <zip.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "common/random.h"
#include "common/sha256.h"

namespace gridexp {
namespace {

// Every entry is stamped 1980-01-02 00:00 in MS-DOS date/time fields, set directly: a time_t
// would be converted through the local time zone and make the bytes depend on it.
constexpr zip_uint16_t kFixedDosTime = 0;
constexpr zip_uint16_t kFixedDosDate = (0 << 9) | (1 << 5) | 2;

Result<std::string> read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::io_error("cannot read " + path.string());
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

Status write_deterministic_zip(const std::vector<std::filesystem::path>& sources,
                               const std::filesystem::path& destination) {
  int error_code = 0;
  zip_t* archive = zip_open(destination.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error_code);
  if (archive == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, error_code);
    Status status = Status::io_error("cannot create " + destination.string() + ": " +
                                     zip_error_strerror(&error));
    zip_error_fini(&error);
    return status;
  }
  // libzip reads sources at zip_close, so the buffers must outlive the loop.
  std::vector<std::string> contents;
  contents.reserve(sources.size());
  for (const std::filesystem::path& source : sources) {
    Result<std::string> data = read_whole_file(source);
    if (!data) {
      zip_discard(archive);
      return data.status();
    }
    contents.push_back(std::move(data).value());
    zip_source_t* buffer =
        zip_source_buffer(archive, contents.back().data(), contents.back().size(), 0);
    zip_int64_t index = buffer == nullptr ? -1
                                          : zip_file_add(archive, source.filename().c_str(), buffer,
                                                         ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      if (buffer != nullptr) zip_source_free(buffer);
      Status status = Status::io_error("cannot add " + source.string() + " to " +
                                       destination.string() + ": " + zip_strerror(archive));
      zip_discard(archive);
      return status;
    }
    zip_uint64_t entry = static_cast<zip_uint64_t>(index);
    zip_set_file_compression(archive, entry, ZIP_CM_DEFLATE, 9);
    zip_file_set_dostime(archive, entry, kFixedDosTime, kFixedDosDate, 0);
    zip_file_set_external_attributes(archive, entry, 0, ZIP_OPSYS_UNIX, 0100644u << 16);
  }
  if (zip_close(archive) != 0) {
    Status status =
        Status::io_error("cannot write " + destination.string() + ": " + zip_strerror(archive));
    zip_discard(archive);
    return status;
  }
  return Status::ok();
}

ExperimentFiles::ExperimentFiles(std::filesystem::path experiment_dir,
                                 std::filesystem::path state_dir, FileSystem& fs)
    : experiment_dir_(std::move(experiment_dir)), state_dir_(std::move(state_dir)), fs_(fs) {}

Result<std::string> ExperimentFiles::cached_sha256(const std::filesystem::path& path) {
  std::error_code error;
  Fingerprint fingerprint{std::filesystem::file_size(path, error),
                          std::filesystem::last_write_time(path, error)};
  if (error) return Status::not_found(path.filename().string() + " is not there");
  auto cached = sha_cache_.find(path);
  if (cached != sha_cache_.end() && cached->second.first == fingerprint) {
    return cached->second.second;
  }
  Result<std::string> sha = sha256_file_hex(path);
  if (!sha) return sha.status();
  sha_cache_[path] = {fingerprint, *sha};
  return sha;
}

Result<FileToServe> ExperimentFiles::serve_as_is(const std::filesystem::path& path,
                                                 const char* name) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return Status::not_found(std::string("the experiment directory has no ") + name);
  }
  Result<std::string> sha = cached_sha256(path);
  if (!sha) return sha.status();
  return FileToServe{path, *sha, "application/zip", name};
}

std::string ExperimentFiles::python_sources_fingerprint(
    std::vector<std::filesystem::path>* sources) const {
  std::error_code error;
  std::vector<std::filesystem::path> found;
  for (const auto& entry : std::filesystem::directory_iterator(experiment_dir_, error)) {
    if (entry.path().extension() == ".py" && entry.is_regular_file(error)) {
      found.push_back(entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  std::string fingerprint;
  for (const std::filesystem::path& path : found) {
    auto modified = std::filesystem::last_write_time(path, error).time_since_epoch().count();
    fingerprint += path.filename().string() + "\n" +
                   std::to_string(std::filesystem::file_size(path, error)) + "\n" +
                   std::to_string(modified) + "\n";
  }
  *sources = std::move(found);
  return fingerprint;
}

Result<FileToServe> ExperimentFiles::scripts_zip() {
  std::lock_guard lock(mutex_);
  std::filesystem::path own = experiment_dir_ / "scripts.zip";
  std::error_code error;
  if (std::filesystem::is_regular_file(own, error)) return serve_as_is(own, "scripts.zip");

  std::vector<std::filesystem::path> sources;
  std::string fingerprint = python_sources_fingerprint(&sources);
  if (sources.empty()) {
    return Status::not_found("the experiment directory has no scripts.zip and no *.py files");
  }
  std::filesystem::path built = state_dir_ / "scripts.zip";
  if (fingerprint != built_scripts_fingerprint_ || !std::filesystem::exists(built, error)) {
    std::filesystem::path temporary = state_dir_ / ("scripts.zip." + random_hex(6) + ".tmp");
    Status status = write_deterministic_zip(sources, temporary);
    if (status) status = fs_.rename_durably(temporary, built);
    if (!status) {
      ignore_outcome(fs_.remove(temporary));
      return status;
    }
    // The rebuilt file may have the old one's size and timestamp: never trust the cache.
    sha_cache_.erase(built);
    built_scripts_fingerprint_ = fingerprint;
  }
  return serve_as_is(built, "scripts.zip");
}

Result<FileToServe> ExperimentFiles::data_zip() {
  std::lock_guard lock(mutex_);
  return serve_as_is(experiment_dir_ / "data.zip", "data.zip");
}

}  // namespace gridexp
