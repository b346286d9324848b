// gridexp-server: hands out the hyperparameter grid of an experiment directory to workers.
#include <iostream>
#include <string>
#include <vector>

#include "common/version.h"
#include "server/malloc_tuning.h"
#include "server/options.h"
#include "server/server.h"
#include "server/terminal_text.h"

int main(int argc, char** argv) {
  gridexp::restart_with_server_malloc_settings(argv);
  std::vector<std::string> arguments(argv + 1, argv + argc);
  gridexp::Result<gridexp::ServerOptions> options = gridexp::parse_server_options(arguments);
  if (!options) {
    std::cerr << "gridexp-server: " << gridexp::terminal_safe(options.status().message()) << "\n";
    return gridexp::kExitBadConfig;
  }
  if (options->show_help) {
    std::cout << gridexp::server_usage();
    return gridexp::kExitOk;
  }
  if (options->show_version) {
    std::cout << "gridexp-server " << gridexp::kVersion << "\n";
    return gridexp::kExitOk;
  }
  return gridexp::run_server(*options, std::cout, std::cerr);
}
