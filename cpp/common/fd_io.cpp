// write_all over POSIX write(2).
#include "common/fd_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gridexp {

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t count = ::write(fd, bytes.data(), bytes.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return Status::io_error(std::strerror(errno));
    if (count == 0) return Status::io_error("nothing written");
    bytes.remove_prefix(static_cast<std::size_t>(count));
  }
  return Status::ok();
}

}  // namespace gridexp
