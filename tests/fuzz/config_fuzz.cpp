// Fuzz target: config.yaml parsing (parse_config, cpp/server/config.h) and the grid built from
// a config that parses.
//
// Any text must give a config or an error naming the source, never a crash, a hang or a
// memory blow-up (libFuzzer's -rss_limit_mb turns one into a failure). A parsed config must
// satisfy the header's promises: a non-empty name, every axis non-empty, keys sorted and
// unique; the grid's first and last points must be addressable and get 16-hex-digit ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/config.h"
#include "server/grid.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  gridexp::Result<gridexp::ExperimentConfig> config = gridexp::parse_config(text, "config.yaml");
  if (!config) {
    require(config.status().message().starts_with("config.yaml"));
    return 0;
  }
  require(!config->experiment_name.empty());
  for (std::size_t i = 0; i < config->axes.size(); ++i) {
    require(!config->axes[i].values.empty());
    if (i > 0) require(config->axes[i - 1].key < config->axes[i].key);
  }
  gridexp::Grid grid(*config);
  require(grid.size() >= 1);
  for (std::uint64_t index : {std::uint64_t{0}, grid.size() - 1}) {
    require(grid.id_at(index).size() == 16);
    require(grid.id_at(index) ==
            gridexp::Grid::trial_id(grid.experiment_name(), grid.hyperparameters_at(index)));
  }
  return 0;
}
