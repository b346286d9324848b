#include "common/file_system.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/fd_io.h"
#include "common/random.h"

namespace gridexp {
namespace {

Status errno_status(const std::string& what, const std::filesystem::path& path) {
  return Status::io_error(what + " " + path.string() + ": " + std::strerror(errno));
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(const char* data, std::size_t size) override {
    if (Status written = write_all(fd_, std::string_view(data, size)); !written) {
      return Status::io_error("cannot write " + path_.string() + ": " + written.message());
    }
    appended_ += size;
    return Status::ok();
  }

  void start_writeback() override {
    if (appended_ == written_back_) return;
    // Linux only; elsewhere (or on a file system without it) the final fsync does it all.
    ::sync_file_range(fd_, static_cast<off_t>(written_back_),
                      static_cast<off_t>(appended_ - written_back_), SYNC_FILE_RANGE_WRITE);
    written_back_ = appended_;
  }

  Status sync_and_close() override {
    int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0) {
      Status status = errno_status("cannot sync", path_);
      ::close(fd);
      return status;
    }
    if (::close(fd) != 0) return errno_status("cannot close", path_);
    return Status::ok();
  }

 private:
  int fd_;
  std::filesystem::path path_;
  std::uint64_t appended_ = 0;
  std::uint64_t written_back_ = 0;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> create_exclusive(const std::filesystem::path& path,
                                                         int mode) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return errno_status("cannot create", path);
    // open() applies the umask; a password file must end up exactly as asked.
    if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
      Status status = errno_status("cannot set permissions of", path);
      ::close(fd);
      return status;
    }
    return std::unique_ptr<WritableFile>(std::make_unique<PosixWritableFile>(fd, path));
  }

  Status rename_durably(const std::filesystem::path& from,
                        const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("cannot rename to", to);
    std::filesystem::path directory = to.parent_path().empty() ? "." : to.parent_path();
    int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return errno_status("cannot open directory", directory);
    int rc = ::fsync(dir_fd);
    ::close(dir_fd);
    if (rc != 0) return errno_status("cannot sync directory", directory);
    return Status::ok();
  }

  Status remove(const std::filesystem::path& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_status("cannot remove", path);
    return Status::ok();
  }

  Status create_directories(const std::filesystem::path& path) override {
    std::error_code error;
    std::filesystem::create_directories(path, error);
    if (error) return Status::io_error("cannot create " + path.string() + ": " + error.message());
    return Status::ok();
  }
};

}  // namespace

FileSystem& default_file_system() {
  static PosixFileSystem instance;
  return instance;
}

Status write_file_atomically(FileSystem& fs, const std::filesystem::path& path,
                             std::string_view contents, int mode) {
  std::filesystem::path temporary = path;
  temporary += "." + random_hex(6) + ".tmp";
  Result<std::unique_ptr<WritableFile>> file = fs.create_exclusive(temporary, mode);
  if (!file) return file.status();
  Status status = (*file)->append(contents.data(), contents.size());
  if (status) status = (*file)->sync_and_close();
  if (status) status = fs.rename_durably(temporary, path);
  if (!status) ignore_outcome(fs.remove(temporary));
  return status;
}

}  // namespace gridexp
