// config_change: what start-up does when an experiment's config outside `hyperparameters` (what
// init_dataset(config) sees) is not the one its trials ran under.
//
// Results computed under another config are never reused silently: with trials that are not
// pending, a changed config is refused (exit 2) naming the changed top-level keys and the
// choice to make with --config-changed: keep-results (the change does not matter: the new
// config is recorded, every result kept) or new-experiment (the next config generation: every
// point gets a new trial id, so the grid runs again; earlier trials are kept but never handed
// out, like points that left the grid). A config changed before any trial ran is recorded
// without asking. Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/config.h"
#include "server/store.h"

namespace gridexp {

enum class ConfigChangedChoice { kAsk, kKeepResults, kNewExperiment };

struct ConfigGenerationDecision {
  std::int64_t config_generation = 0;  // for the Grid
  std::string banner_line;             // what happened, for the banner; empty when nothing did
};

// `recorded` is Store::recorded_config(config.experiment_name). An error (kInvalidArgument)
// when the config changed, trials ran, and `choice` is kAsk.
Result<ConfigGenerationDecision> decide_config_generation(
    const ExperimentConfig& config, const std::optional<RecordedConfig>& recorded,
    ConfigChangedChoice choice);

// One line per top-level key whose value differs between two common_config_json() texts,
// `key: old -> new` ("(absent)" for a key one side lacks), values shortened and every line
// terminal_safe; at most `max_lines`, then "... and N more".
std::vector<std::string> describe_config_changes(const std::string& before_json,
                                                 const std::string& after_json,
                                                 std::size_t max_lines = 10);

}  // namespace gridexp
