#include "worker/workdir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace gridexp {
namespace {

std::string read_owner(int fd) {
  char buffer[256] = {};
  ssize_t got = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string owner(buffer, got > 0 ? static_cast<std::size_t>(got) : 0);
  while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
  return owner;
}

}  // namespace

Result<std::unique_ptr<WorkdirLock>> WorkdirLock::acquire(const std::filesystem::path& state_dir) {
  std::filesystem::path path = state_dir / "lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    std::string owner = read_owner(fd);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return Status::io_error("cannot lock " + path.string() + ": " + std::strerror(error));
    }
    return Status::conflict("another gridexp-worker" + (owner.empty() ? "" : " (" + owner + ")") +
                            " is using the working directory " + state_dir.parent_path().string() +
                            "; give each worker its own --workdir");
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string owner = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  // Who holds it, for the next worker's message; the lock itself does not depend on it.
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] ssize_t written = ::pwrite(fd, owner.data(), owner.size(), 0);
  }
  return std::unique_ptr<WorkdirLock>(new WorkdirLock(fd));
}

WorkdirLock::~WorkdirLock() { ::close(fd_); }

}  // namespace gridexp
