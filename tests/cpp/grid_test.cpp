// Tests for server/grid: point order, the canonical hyperparameter JSON, and trial ids that
// must never change for the same point.
#include "server/grid.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "server/config.h"
#include "test_support.h"

namespace gridexp {
namespace {

using nlohmann::json;
using namespace gridexp::testing;

constexpr std::string_view kNestedConfig = R"(experiment_name: nested
hyperparameters:
  optimizer:
    - {name: sgd, momentum: [0.9, 0.99]}
    - {name: adam, betas: {b1: 0.9, b2: 0.999}}
    - name: rmsprop
  layers: [[], [64], [64, [32, 16]]]
  dropout: 0.5
  schedule: {warmup: 100, decay: cosine}
)";

constexpr std::string_view kUnicodeAndNumbersConfig = R"(experiment_name: 実験
hyperparameters:
  学習率: [1e-3, .5, -0.0, 1.5e300, 6.02e+23, 1.0]
  "kernel|filter_sizes": [[3, 4, 5], [2]]
  émoji: ['😀', "\u00e9", plain text, '']
  B: [true, false, null]
  a: [-5, 0x1f, 18446744073709551615, 9223372036854775808, 1]
)";

ExperimentConfig config_from(std::string_view yaml) {
  Result<ExperimentConfig> config = parse_config(yaml, "config.yaml");
  if (!config) {
    ADD_FAILURE() << config.status().message();
    return {};
  }
  return std::move(config).value();
}

TEST(Grid, ReadmeExampleHasEightPoints) {
  Grid grid(config_from(kReadmeConfig));
  EXPECT_EQ(grid.experiment_name(), "sentiment_analysis1");
  EXPECT_EQ(grid.size(), 8u);
}

// Sorted axes: activation, batch_size, char_embedding_size, epochs, fc_sizes, learning_rate,
// loss_fn, vocab_size. Of the varying ones batch_size is slowest, learning_rate fastest.
TEST(Grid, ReadmeExamplePointsInOrder) {
  Grid grid(config_from(kReadmeConfig));
  json base = {{"activation", "relu"},
               {"char_embedding_size", 8},
               {"epochs", 10},
               {"loss_fn", "xent"},
               {"vocab_size", 70}};
  std::vector<std::tuple<int, std::vector<int>, double>> expected = {
      {128, {2048}, 0.03}, {128, {2048}, 0.1}, {128, {4096}, 0.03}, {128, {4096}, 0.1},
      {64, {2048}, 0.03},  {64, {2048}, 0.1},  {64, {4096}, 0.03},  {64, {4096}, 0.1}};
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    auto [batch_size, fc_sizes, learning_rate] = expected[index];
    json point = base;
    point["batch_size"] = batch_size;
    point["fc_sizes"] = fc_sizes;
    point["learning_rate"] = learning_rate;
    EXPECT_EQ(grid.hyperparameters_at(index), point) << index;
  }
}

TEST(Grid, FirstSortedKeyVariesSlowest) {
  // Written out of order; the grid follows the sorted keys.
  Grid grid(
      config_from("experiment_name: e\nhyperparameters:\n  c: [x, 'y']\n  a: [1, 2]\n"
                  "  b: [true, false, null]\n"));
  ASSERT_EQ(grid.size(), 12u);
  std::vector<json> points;
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    points.push_back(grid.hyperparameters_at(index));
  }
  EXPECT_EQ(points[0], json::parse(R"({"a": 1, "b": true, "c": "x"})"));
  EXPECT_EQ(points[1], json::parse(R"({"a": 1, "b": true, "c": "y"})"));
  EXPECT_EQ(points[2], json::parse(R"({"a": 1, "b": false, "c": "x"})"));
  EXPECT_EQ(points[5], json::parse(R"({"a": 1, "b": null, "c": "y"})"));
  EXPECT_EQ(points[6], json::parse(R"({"a": 2, "b": true, "c": "x"})"));
  EXPECT_EQ(points[11], json::parse(R"({"a": 2, "b": null, "c": "y"})"));
}

TEST(Grid, SingleValueAxesGiveOnePoint) {
  Grid grid(
      config_from("experiment_name: e\nhyperparameters:\n  lr: 0.1\n  opt: {name: sgd}\n"
                  "  fc: [[64, 32]]\n"));
  ASSERT_EQ(grid.size(), 1u);
  EXPECT_EQ(grid.hyperparameters_at(0),
            json::parse(R"({"lr": 0.1, "opt": {"name": "sgd"}, "fc": [64, 32]})"));
}

TEST(Grid, NoHyperparametersGiveOneEmptyPoint) {
  Grid grid(config_from("experiment_name: e\nhyperparameters: {}\n"));
  ASSERT_EQ(grid.size(), 1u);
  EXPECT_EQ(grid.hyperparameters_at(0), json::object());
  EXPECT_EQ(grid.hyperparameters_json_at(0), "{}");
  EXPECT_EQ(grid.id_at(0), "2fd2a49f7afbab04");
}

TEST(Grid, SizeIsTheProductOfAxisSizes) {
  Grid grid(
      config_from("experiment_name: e\nhyperparameters:\n  a: [0, 1, 2, 3, 4, 5, 6]\n"
                  "  b: [0, 1, 2, 3, 4]\n  c: [0, 1, 2]\n  d: 9\n"));
  ASSERT_EQ(grid.size(), 105u);
  EXPECT_EQ(grid.hyperparameters_at(104), json::parse(R"({"a": 6, "b": 4, "c": 2, "d": 9})"));
  EXPECT_EQ(grid.hyperparameters_at(52), json::parse(R"({"a": 3, "b": 2, "c": 1, "d": 9})"));
}

// Pinned once, computed independently in Python as
// sha256(json.dumps({"experiment_name": ..., "hyperparameters": ...}, sort_keys=True,
// separators=(",", ":"), ensure_ascii=False))[:16]. A change here orphans every stored trial.
TEST(Grid, IdsAreGolden) {
  Grid readme(config_from(kReadmeConfig));
  EXPECT_EQ(readme.hyperparameters_json_at(0),
            R"({"activation":"relu","batch_size":128,"char_embedding_size":8,"epochs":10,)"
            R"("fc_sizes":[2048],"learning_rate":0.03,"loss_fn":"xent","vocab_size":70})");
  EXPECT_EQ(readme.id_at(0), "9f58145346deb384");
  EXPECT_EQ(readme.id_at(7), "13d222101749c739");

  Grid unicode(
      config_from("experiment_name: 実験\nhyperparameters:\n  学習率: 1e-3\n"
                  "  kernel|filter_sizes: [[3, 4, 5]]\n  émoji: '😀'\n"
                  "  opt: {name: adam, betas: [0.9, 0.999]}\n"));
  ASSERT_EQ(unicode.size(), 1u);
  EXPECT_EQ(unicode.hyperparameters_json_at(0),
            R"({"kernel|filter_sizes":[3,4,5],"opt":{"betas":[0.9,0.999],"name":"adam"},)"
            R"("émoji":"😀","学習率":0.001})");
  EXPECT_EQ(unicode.id_at(0), "515ea4f920c0d5a9");
}

// Pinned the same way, with "config_generation": g added to the document. Generation 0 is the
// ids above, so stores from before generations existed keep theirs.
TEST(Grid, LaterConfigGenerationsHaveGoldenIdsOfTheirOwn) {
  ExperimentConfig config = config_from(kReadmeConfig);
  EXPECT_EQ(Grid(config, 0).id_at(0), "9f58145346deb384");
  Grid second(config, 1);
  EXPECT_EQ(second.config_generation(), 1);
  EXPECT_EQ(second.id_at(0), "734224cb8940b393");
  EXPECT_EQ(Grid(config, 2).id_at(0), "9926999c8a9152c6");
  EXPECT_EQ(second.hyperparameters_json_at(0), Grid(config).hyperparameters_json_at(0));
  for (std::uint64_t index = 0; index < second.size(); ++index) {
    EXPECT_EQ(second.id_at(index),
              Grid::trial_id(config.experiment_name, second.hyperparameters_at(index), 1));
    EXPECT_NE(second.id_at(index), Grid(config).id_at(index));
  }
}

TEST(Grid, CarriesTheConfigOutsideHyperparameters) {
  EXPECT_EQ(Grid(config_from(kReadmeConfig)).common_config(), R"({"dataset":"imdb.pt"})");
}

TEST(Grid, IdsDoNotDependOnHowTheConfigIsWritten) {
  Grid block_style(config_from(kReadmeConfig));
  Grid flow_style(config_from(
      "# the same grid, reordered and in flow style\nhyperparameters: {activation: relu, "
      "vocab_size: [70], loss_fn: \"xent\", learning_rate: [0.03, 0.1], fc_sizes: [[2048], "
      "[4096]], epochs: 10, char_embedding_size: [8], batch_size: [128, 64]}\n"
      "experiment_name: sentiment_analysis1\n"));
  ASSERT_EQ(flow_style.size(), block_style.size());
  for (std::uint64_t index = 0; index < block_style.size(); ++index) {
    EXPECT_EQ(flow_style.id_at(index), block_style.id_at(index)) << index;
  }
}

// id_at, hyperparameters_json_at and trial_id are three routes to the same canonical text.
void expect_consistent(const Grid& grid) {
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    json point = grid.hyperparameters_at(index);
    EXPECT_EQ(grid.hyperparameters_json_at(index), point.dump()) << index;
    EXPECT_EQ(grid.id_at(index), Grid::trial_id(grid.experiment_name(), point)) << index;
    EXPECT_EQ(grid.id_at(index).size(), 16u);
  }
}

void expect_distinct_ids(const Grid& grid) {
  std::set<std::string> ids;
  for (std::uint64_t index = 0; index < grid.size(); ++index) ids.insert(grid.id_at(index));
  EXPECT_EQ(ids.size(), grid.size());
}

TEST(Grid, IdAtAgreesWithTrialIdAtEveryPoint) {
  for (std::string_view yaml : {kReadmeConfig, kNestedConfig, kUnicodeAndNumbersConfig}) {
    Grid grid(config_from(yaml));
    SCOPED_TRACE(grid.experiment_name());
    expect_consistent(grid);
  }
}

TEST(Grid, IdsAreDistinctAcrossPoints) {
  for (std::string_view yaml : {kReadmeConfig, kNestedConfig, kUnicodeAndNumbersConfig}) {
    Grid grid(config_from(yaml));
    SCOPED_TRACE(grid.experiment_name());
    expect_distinct_ids(grid);
  }
}

TEST(Grid, LargerGridsStayConsistent) {
  Grid grid(config_from(kUnicodeAndNumbersConfig));
  EXPECT_EQ(grid.size(), 6u * 2u * 4u * 3u * 5u);
  Grid nested(config_from(kNestedConfig));
  EXPECT_EQ(nested.size(), 9u);
}

TEST(Grid, NumbersKeepTheirTypeInTheCanonicalText) {
  Grid grid(
      config_from("experiment_name: e\nhyperparameters:\n"
                  "  x: [1, 1.0, '1', 18446744073709551615, -0.0, 1.5e300]\n"));
  ASSERT_EQ(grid.size(), 6u);
  std::vector<std::string> texts;
  for (std::uint64_t index = 0; index < grid.size(); ++index) {
    texts.push_back(grid.hyperparameters_json_at(index));
  }
  EXPECT_EQ(texts, (std::vector<std::string>{R"({"x":1})", R"({"x":1.0})", R"({"x":"1"})",
                                             R"({"x":18446744073709551615})", R"({"x":-0.0})",
                                             R"({"x":1.5e+300})"}));
  expect_distinct_ids(grid);
}

TEST(Grid, DifferentExperimentNamesGiveDifferentIds) {
  Grid first(config_from("experiment_name: first\nhyperparameters: {lr: [0.1, 0.2]}\n"));
  Grid second(config_from("experiment_name: second\nhyperparameters: {lr: [0.1, 0.2]}\n"));
  Grid first_again(config_from("experiment_name: first\nhyperparameters: {lr: [0.1, 0.2]}\n"));
  for (std::uint64_t index = 0; index < first.size(); ++index) {
    EXPECT_EQ(first.hyperparameters_json_at(index), second.hyperparameters_json_at(index));
    EXPECT_NE(first.id_at(index), second.id_at(index)) << index;
    EXPECT_EQ(first.id_at(index), first_again.id_at(index)) << index;
  }
}

TEST(Grid, BuiltFromAConfigByHand) {
  ExperimentConfig config;
  config.experiment_name = "by_hand";
  config.axes = {{"a", {json::array(), json::object()}}, {"b", {json("x")}}};
  Grid grid(config);
  ASSERT_EQ(grid.size(), 2u);
  EXPECT_EQ(grid.hyperparameters_json_at(0), R"({"a":[],"b":"x"})");
  EXPECT_EQ(grid.hyperparameters_json_at(1), R"({"a":{},"b":"x"})");
  expect_consistent(grid);
  expect_distinct_ids(grid);
}

}  // namespace
}  // namespace gridexp
