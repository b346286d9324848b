// write_all: the one loop that writes a whole buffer to a file descriptor (a file, a pipe),
// retrying on EINTR and after short writes.
//
// Stateless; safe from any thread (the descriptor is the caller's to share or not).
#pragma once

#include <string_view>

#include "common/status.h"

namespace gridexp {

// Writes every byte of `bytes` to `fd`. On failure: Status::io_error whose message is the
// system's description of errno (errno is left as the failed write set it); how much was
// written by then is unspecified.
Status write_all(int fd, std::string_view bytes);

}  // namespace gridexp
