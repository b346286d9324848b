// run_server: gridexp-server from parsed options to exit status.
//
// Start-up validates the config before anything is written (a config error exits 2 with
// file:line:column: key), then creates <dir>/.gridexp (state, password) and <dir>/models,
// opens the store, adds the config's grid, binds the port and prints the banner. It serves
// until SIGINT or SIGTERM, then stops accepting, finishes the requests in flight and exits 0.
// A background thread returns expired leases to pending every second.
// Call once per process, from the main thread, before any other thread is started.
#pragma once

#include <iosfwd>

#include "server/options.h"

namespace gridexp {

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;    // could not start: port taken, disk error
inline constexpr int kExitBadConfig = 2;  // bad command line or config.yaml

int run_server(const ServerOptions& options, std::ostream& out, std::ostream& err);

}  // namespace gridexp
