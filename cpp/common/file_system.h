// FileSystem: the seam between the server and the disk for files that must never be
// half-written (model uploads, the generated scripts.zip, the password file).
//
// Files are written to a fresh temporary name, synced, then renamed over the final name and
// the directory synced, so a reader sees the old file or the whole new one. Tests substitute
// an implementation that fails or writes short at a chosen byte to exercise error paths.
// The default implementation is safe from any thread; a WritableFile belongs to one thread.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

#include "common/status.h"

namespace gridexp {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status append(const char* data, std::size_t size) = 0;
  // Starts writing what was appended so far to the disk without waiting for it, so that the
  // final sync has little left to do. A hint: durability still comes from sync_and_close().
  virtual void start_writeback() {}
  // Flushes to stable storage and closes; no append afterwards.
  virtual Status sync_and_close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates `path`, which must not exist yet, with the given permission bits.
  virtual Result<std::unique_ptr<WritableFile>> create_exclusive(const std::filesystem::path& path,
                                                                 int mode) = 0;
  // Atomically replaces `to` with `from` and syncs the directory holding `to`.
  virtual Status rename_durably(const std::filesystem::path& from,
                                const std::filesystem::path& to) = 0;
  virtual Status remove(const std::filesystem::path& path) = 0;
  virtual Status create_directories(const std::filesystem::path& path) = 0;
};

// The real disk, through POSIX calls.
FileSystem& default_file_system();

// Writes `contents` to `path` atomically (temp file, sync, rename) with permission `mode`.
Status write_file_atomically(FileSystem& fs, const std::filesystem::path& path,
                             std::string_view contents, int mode);

}  // namespace gridexp
