// zip_directory and directory_fingerprint over libzip and std::filesystem.
#include "worker/directory_zip.h"

#include <sys/stat.h>
#include <zip.h>

#include <algorithm>
#include <system_error>
#include <vector>

namespace gridexp {
namespace {

struct Entry {
  std::filesystem::path path;
  std::string name;  // relative, '/'-separated
  bool is_directory = false;
};

// The regular files and directories below `directory`, in name order (symlinks not followed).
std::vector<Entry> entries_below(const std::filesystem::path& directory) {
  std::vector<Entry> entries;
  std::error_code error;
  std::filesystem::recursive_directory_iterator walk(directory, error), end;
  for (; !error && walk != end; walk.increment(error)) {
    std::filesystem::file_status status = walk->symlink_status(error);
    if (error) break;
    bool is_directory = std::filesystem::is_directory(status);
    if (!is_directory && !std::filesystem::is_regular_file(status)) continue;
    entries.push_back(
        {walk->path(), walk->path().lexically_relative(directory).generic_string(), is_directory});
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

}  // namespace

Status zip_directory(const std::filesystem::path& directory, const std::filesystem::path& archive) {
  std::error_code ignored;
  std::filesystem::remove(archive, ignored);
  int error_code = 0;
  zip_t* zip = zip_open(archive.c_str(), ZIP_CREATE | ZIP_EXCL, &error_code);
  if (zip == nullptr) return Status::io_error("cannot create " + archive.string());
  auto fail = [&](const std::string& what) {
    std::string message = what + ": " + zip_strerror(zip);
    zip_discard(zip);
    std::filesystem::remove(archive, ignored);
    return Status::io_error(message);
  };
  for (const Entry& entry : entries_below(directory)) {
    struct stat info {};
    if (::stat(entry.path.c_str(), &info) != 0) continue;  // gone meanwhile
    zip_int64_t index = -1;
    if (entry.is_directory) {
      index = zip_dir_add(zip, entry.name.c_str(), ZIP_FL_ENC_UTF_8);
    } else {
      zip_source_t* source = zip_source_file(zip, entry.path.c_str(), 0, -1);
      if (source == nullptr) return fail("cannot read " + entry.path.string());
      index = zip_file_add(zip, entry.name.c_str(), source, ZIP_FL_ENC_UTF_8);
      if (index < 0) zip_source_free(source);
      if (index >= 0)
        zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_DEFLATE, 1);
    }
    if (index < 0) return fail("cannot add " + entry.name + " to " + archive.string());
    zip_uint32_t mode =
        static_cast<zip_uint32_t>(info.st_mode & 07777) | (entry.is_directory ? S_IFDIR : S_IFREG);
    zip_file_set_external_attributes(zip, static_cast<zip_uint64_t>(index), 0, ZIP_OPSYS_UNIX,
                                     mode << 16);
  }
  // zip_close() writes the archive only now, reading every file; an empty one it does not write.
  if (zip_close(zip) != 0) return fail("cannot write " + archive.string());
  if (!std::filesystem::exists(archive, ignored)) {
    return Status::invalid_argument(directory.string() + " is empty");
  }
  return Status::ok();
}

std::string directory_fingerprint(const std::filesystem::path& directory) {
  std::string fingerprint;
  for (const Entry& entry : entries_below(directory)) {
    struct stat info {};
    if (::lstat(entry.path.c_str(), &info) != 0) continue;
    fingerprint += entry.name + '\0' + (entry.is_directory ? "d" : std::to_string(info.st_size)) +
                   ':' + std::to_string(info.st_mtim.tv_sec) + '.' +
                   std::to_string(info.st_mtim.tv_nsec) + '\n';
  }
  return fingerprint;
}

}  // namespace gridexp
