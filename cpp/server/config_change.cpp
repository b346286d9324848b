#include "server/config_change.h"

#include <set>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "server/terminal_text.h"

namespace gridexp {
namespace {

using nlohmann::json;

constexpr std::size_t kShownValueBytes = 60;
constexpr std::size_t kShownKeyBytes = 60;

// Cut at a UTF-8 character boundary, so that terminal_safe does not escape half a character.
std::string shortened(const std::string& text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return text.substr(0, cut) + "...";
}

std::string shown_value(const json& object, const std::string& key) {
  auto found = object.find(key);
  if (found == object.end()) return "(absent)";
  return shortened(found->dump(), kShownValueBytes);
}

json parsed_object(const std::string& text) {
  Result<json> parsed = parse_json(text, kMaxMessageJsonDepth);
  return parsed && parsed.value().is_object() ? std::move(parsed).value() : json::object();
}

std::vector<std::string> changed_keys(const json& before, const json& after) {
  std::set<std::string> keys;
  for (const auto& [key, value] : before.items()) keys.insert(key);
  for (const auto& [key, value] : after.items()) keys.insert(key);
  std::vector<std::string> changed;
  for (const std::string& key : keys) {
    if (!before.contains(key) || !after.contains(key) || before[key] != after[key]) {
      changed.push_back(key);
    }
  }
  return changed;
}

std::string key_list(const std::vector<std::string>& keys) {
  std::string list;
  for (std::size_t i = 0; i < keys.size() && i < 5; ++i) {
    list += (i ? ", " : "") + terminal_safe(shortened(keys[i], kShownKeyBytes));
  }
  if (keys.size() > 5) list += ", ...";
  return list;
}

}  // namespace

std::vector<std::string> describe_config_changes(const std::string& before_json,
                                                 const std::string& after_json,
                                                 std::size_t max_lines) {
  json before = parsed_object(before_json);
  json after = parsed_object(after_json);
  std::vector<std::string> keys = changed_keys(before, after);
  std::vector<std::string> lines;
  for (const std::string& key : keys) {
    if (lines.size() == max_lines) {
      lines.push_back("... and " + std::to_string(keys.size() - max_lines) + " more");
      break;
    }
    lines.push_back(terminal_safe(shortened(key, kShownKeyBytes) + ": " + shown_value(before, key) +
                                  " -> " + shown_value(after, key)));
  }
  return lines;
}

Result<ConfigGenerationDecision> decide_config_generation(
    const ExperimentConfig& config, const std::optional<RecordedConfig>& recorded,
    ConfigChangedChoice choice) {
  std::string common = common_config_json(config);
  // A new experiment, or one last synced before configs were recorded: nothing to compare.
  if (!recorded || !recorded->common_config) return ConfigGenerationDecision{};
  ConfigGenerationDecision decision{recorded->config_generation, ""};
  if (*recorded->common_config == common) return decision;

  std::string keys =
      key_list(changed_keys(parsed_object(*recorded->common_config), parsed_object(common)));
  std::string changed = "config changed outside hyperparameters (" + keys + ")";
  if (recorded->trials_not_pending == 0) {
    decision.banner_line = changed + "; no trial had run, so nothing was kept";
    return decision;
  }
  switch (choice) {
    case ConfigChangedChoice::kKeepResults:
      decision.banner_line = changed + "; results kept (--config-changed=keep-results)";
      return decision;
    case ConfigChangedChoice::kNewExperiment:
      decision.config_generation = recorded->config_generation + 1;
      decision.banner_line = changed +
                             "; the grid runs again (--config-changed=new-experiment, generation " +
                             std::to_string(decision.config_generation) +
                             "): earlier trials are kept but never handed out";
      return decision;
    case ConfigChangedChoice::kAsk:
      break;
  }
  std::string message = terminal_safe(config.source_name) + ": the config outside " +
                        "hyperparameters is not the one " +
                        std::to_string(recorded->trials_not_pending) + " trial(s) of " +
                        terminal_safe(config.experiment_name) + " ran under:\n";
  for (const std::string& line : describe_config_changes(*recorded->common_config, common)) {
    message += "  " + line + "\n";
  }
  message +=
      "Start again with --config-changed=keep-results if the change does not affect results "
      "(they are kept), or --config-changed=new-experiment to run the whole grid again under "
      "the new config (earlier trials are kept but never handed out).";
  return Status::invalid_argument(std::move(message));
}

}  // namespace gridexp
