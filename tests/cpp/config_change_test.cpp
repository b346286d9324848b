// Tests for server/config_change: a config changed outside hyperparameters is never taken
// silently once trials ran under the old one.
#include "server/config_change.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace gridexp {
namespace {

ExperimentConfig config_with(const nlohmann::json& common) {
  ExperimentConfig config;
  config.source_name = "config.yaml";
  config.experiment_name = "exp";
  config.document = common;
  config.document["experiment_name"] = "exp";
  config.document["hyperparameters"] = {{"lr", {1, 2}}};
  return config;
}

RecordedConfig recorded(const std::string& common, std::int64_t generation, std::int64_t ran) {
  return RecordedConfig{common, generation, ran};
}

TEST(DecideConfigGeneration, ANewExperimentStartsAtGenerationZero) {
  Result<ConfigGenerationDecision> decision = decide_config_generation(
      config_with({{"data", "a"}}), std::nullopt, ConfigChangedChoice::kAsk);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->config_generation, 0);
  EXPECT_EQ(decision->banner_line, "");
}

TEST(DecideConfigGeneration, AnUnchangedConfigKeepsItsGenerationWhateverTheChoice) {
  for (ConfigChangedChoice choice : {ConfigChangedChoice::kAsk, ConfigChangedChoice::kKeepResults,
                                     ConfigChangedChoice::kNewExperiment}) {
    Result<ConfigGenerationDecision> decision = decide_config_generation(
        config_with({{"data", "a"}}), recorded(R"({"data":"a"})", 2, 5), choice);
    ASSERT_TRUE(decision);
    EXPECT_EQ(decision->config_generation, 2);
    EXPECT_EQ(decision->banner_line, "");
  }
}

TEST(DecideConfigGeneration, AConfigNeverRecordedIsTaken) {
  RecordedConfig from_before = recorded("", 0, 5);
  from_before.common_config.reset();
  Result<ConfigGenerationDecision> decision = decide_config_generation(
      config_with({{"data", "a"}}), from_before, ConfigChangedChoice::kAsk);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->config_generation, 0);
}

TEST(DecideConfigGeneration, AChangeBeforeAnyTrialRanIsTakenAndSaid) {
  Result<ConfigGenerationDecision> decision = decide_config_generation(
      config_with({{"data", "b"}}), recorded(R"({"data":"a"})", 0, 0), ConfigChangedChoice::kAsk);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->config_generation, 0);
  EXPECT_EQ(decision->banner_line,
            "config changed outside hyperparameters (data); no trial had run, so nothing was "
            "kept");
}

TEST(DecideConfigGeneration, AChangeAfterTrialsRanIsRefusedNamingTheKeysAndTheChoice) {
  Result<ConfigGenerationDecision> decision = decide_config_generation(
      config_with({{"dataset", "imdb2.pt"}, {"max_len", 200}, {"seed", 1}}),
      recorded(R"({"dataset":"imdb.pt","seed":1,"split":0.8})", 0, 3), ConfigChangedChoice::kAsk);
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(decision.status().message(),
            "config.yaml: the config outside hyperparameters is not the one 3 trial(s) of exp ran "
            "under:\n"
            "  dataset: \"imdb.pt\" -> \"imdb2.pt\"\n"
            "  max_len: (absent) -> 200\n"
            "  split: 0.8 -> (absent)\n"
            "Start again with --config-changed=keep-results if the change does not affect "
            "results (they are kept), or --config-changed=new-experiment to run the whole grid "
            "again under the new config (earlier trials are kept but never handed out).");
}

TEST(DecideConfigGeneration, KeepResultsKeepsTheGeneration) {
  Result<ConfigGenerationDecision> decision =
      decide_config_generation(config_with({{"data", "b"}}), recorded(R"({"data":"a"})", 1, 3),
                               ConfigChangedChoice::kKeepResults);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->config_generation, 1);
  EXPECT_EQ(decision->banner_line,
            "config changed outside hyperparameters (data); results kept "
            "(--config-changed=keep-results)");
}

TEST(DecideConfigGeneration, NewExperimentMovesToTheNextGeneration) {
  Result<ConfigGenerationDecision> decision =
      decide_config_generation(config_with({{"data", "b"}}), recorded(R"({"data":"a"})", 1, 3),
                               ConfigChangedChoice::kNewExperiment);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->config_generation, 2);
  EXPECT_EQ(decision->banner_line,
            "config changed outside hyperparameters (data); the grid runs again "
            "(--config-changed=new-experiment, generation 2): earlier trials are kept but never "
            "handed out");
}

TEST(DescribeConfigChanges, ShortensLongValuesBoundsTheLinesAndEscapes) {
  std::string long_value(200, 'x');
  std::vector<std::string> lines = describe_config_changes(
      R"({"a":")" + long_value + R"(","b\u001b[2J":1})", R"({"a":"y","b\u001b[2J":2})");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "a: \"" + std::string(59, 'x') + "... -> \"y\"");
  EXPECT_EQ(lines[1], "b\\x1b[2J: 1 -> 2");

  nlohmann::json before = nlohmann::json::object();
  nlohmann::json after = nlohmann::json::object();
  for (int key = 0; key < 25; ++key) after["k" + std::to_string(key)] = key;
  lines = describe_config_changes(before.dump(), after.dump(), 10);
  ASSERT_EQ(lines.size(), 11u);
  EXPECT_EQ(lines.back(), "... and 15 more");
}

}  // namespace
}  // namespace gridexp
