// Helpers shared by the GoogleTest files in tests/cpp, header-only:
//   - TempDir: a fresh directory under the system temp directory, removed with its contents.
//   - ScopedUmask: sets the process umask for one test and restores it.
//   - read_file, write_file, file_names, permission_bits, contains: small file and text checks.
//   - Faults, FaultyFileSystem: the real disk behind the FileSystem seam, with chosen operations
//     failing (short writes, failed create, sync or rename) or bent (coarse timestamps).
//   - kReadmeConfig: the example config.yaml from the seed's README.
// Everything lives in gridexp::testing; test code inside namespace gridexp therefore names
// GoogleTest as ::testing. None of it is thread-safe: ScopedUmask changes process state, and
// a FaultyFileSystem records into unguarded vectors, so use each from one test thread.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/file_system.h"
#include "common/random.h"
#include "common/status.h"

namespace gridexp::testing {

// A fresh directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() : path_(std::filesystem::temp_directory_path() / ("gridexp-test-" + random_hex(8))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Sets the process umask for one test and restores the previous one.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t previous_;
};

// The whole file as bytes; empty if it cannot be read.
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Writes `contents` to `path`, replacing it; a failed write fails the running test.
inline void write_file(const std::filesystem::path& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

// The names of the entries of `directory`, sorted.
inline std::vector<std::string> file_names(const std::filesystem::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The permission bits of `path`, without following a final symlink; -1 if it cannot be read.
inline int permission_bits(const std::filesystem::path& path) {
  struct stat info = {};
  if (::lstat(path.c_str(), &info) != 0) return -1;
  return static_cast<int>(info.st_mode & 07777);
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What a FaultyFileSystem breaks or bends. The default breaks nothing, so a FaultyFileSystem
// built from it only records what was created and removed.
struct Faults {
  std::optional<std::size_t> fail_append_after_bytes;  // total bytes written before a short write
  bool fail_create = false;
  bool fail_sync = false;
  bool fail_rename = false;
  // Stamps every renamed-into-place file with this time, as a filesystem with coarse
  // timestamps would when two writes fall into the same tick.
  std::optional<std::filesystem::file_time_type> mtime_after_rename;
  // Counts start_writeback() calls on the files (shared by copies of these Faults).
  std::shared_ptr<std::atomic<int>> writebacks = std::make_shared<std::atomic<int>>(0);
};

// A real file whose appends stop after Faults::fail_append_after_bytes and whose sync can fail.
// Holds a reference to its file system's Faults, so it must not outlive that file system.
class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(std::unique_ptr<WritableFile> real, const Faults& faults)
      : real_(std::move(real)), faults_(faults) {}

  Status append(const char* data, std::size_t size) override {
    std::size_t allowed = size;
    if (faults_.fail_append_after_bytes) {
      std::size_t limit = *faults_.fail_append_after_bytes;
      allowed = written_ >= limit ? 0 : std::min(size, limit - written_);
    }
    if (allowed > 0) {
      if (Status status = real_->append(data, allowed); !status) return status;
      written_ += allowed;
    }
    if (allowed < size)
      return Status::io_error("injected: no space left on device after " +
                              std::to_string(written_) + " bytes");
    return Status::ok();
  }

  void start_writeback() override {
    ++*faults_.writebacks;
    real_->start_writeback();
  }

  Status sync_and_close() override {
    Status status = real_->sync_and_close();
    if (faults_.fail_sync) return Status::io_error("injected: sync failed");
    return status;
  }

 private:
  std::unique_ptr<WritableFile> real_;
  const Faults& faults_;
  std::size_t written_ = 0;
};

// The real disk with chosen operations failing; records what was created and removed.
class FaultyFileSystem final : public FileSystem {
 public:
  explicit FaultyFileSystem(Faults faults = {}) : faults_(std::move(faults)) {}

  Result<std::unique_ptr<WritableFile>> create_exclusive(const std::filesystem::path& path,
                                                         int mode) override {
    if (faults_.fail_create) return Status::io_error("injected: cannot create " + path.string());
    Result<std::unique_ptr<WritableFile>> real = real_.create_exclusive(path, mode);
    if (!real) return real.status();
    created.push_back(path);
    return std::unique_ptr<WritableFile>(
        std::make_unique<FaultyWritableFile>(std::move(real).value(), faults_));
  }

  Status rename_durably(const std::filesystem::path& from,
                        const std::filesystem::path& to) override {
    if (faults_.fail_rename) return Status::io_error("injected: cannot rename to " + to.string());
    Status status = real_.rename_durably(from, to);
    if (status && faults_.mtime_after_rename) {
      std::filesystem::last_write_time(to, *faults_.mtime_after_rename);
    }
    return status;
  }

  Status remove(const std::filesystem::path& path) override {
    removed.push_back(path);
    return real_.remove(path);
  }

  Status create_directories(const std::filesystem::path& path) override {
    return real_.create_directories(path);
  }

  std::vector<std::filesystem::path> created;
  std::vector<std::filesystem::path> removed;

 private:
  FileSystem& real_ = default_file_system();
  Faults faults_;
};

// The example from the seed's README, verbatim: 2 x 2 x 2 = 8 points over eight axes.
inline constexpr std::string_view kReadmeConfig = R"(experiment_name: sentiment_analysis1
dataset: 'imdb.pt'
hyperparameters:
  batch_size:
    -  128
    -  64
  learning_rate:
    - .03
    - .1
  loss_fn:
    - 'xent'
  epochs:
    - 10
  fc_sizes:
    - [2048]
    - [4096]
  vocab_size:
    - 70
  char_embedding_size:
    -  8
  activation:
    -  'relu'
)";

}  // namespace gridexp::testing
