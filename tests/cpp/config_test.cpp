// Tests for server/config: the seed's config.yaml format, YAML 1.2 core-schema types, and every
// error with its exact file:line:column and key.
#include "server/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>

#include "test_support.h"

namespace gridexp {
namespace {

using nlohmann::json;
using namespace gridexp::testing;

ExperimentConfig parse_ok(std::string_view yaml) {
  Result<ExperimentConfig> config = parse_config(yaml, "config.yaml");
  if (!config) {
    ADD_FAILURE() << "did not parse: " << config.status().message() << "\n" << yaml;
    return {};
  }
  return std::move(config).value();
}

std::string parse_error(std::string_view yaml) {
  Result<ExperimentConfig> config = parse_config(yaml, "config.yaml");
  if (config) {
    ADD_FAILURE() << "parsed, but should not have:\n" << yaml;
    return "";
  }
  EXPECT_EQ(config.status().code(), Code::kInvalidArgument);
  return config.status().message();
}

// The JSON that `yaml_value` becomes as a pass-through top-level value.
json value_of(std::string_view yaml_value) {
  std::string yaml =
      "experiment_name: e\nhyperparameters: {}\nvalue: " + std::string(yaml_value) + "\n";
  return parse_ok(yaml).document["value"];
}

// The values of the only axis of `hyperparameters:\n  <axis_yaml>`.
std::vector<json> axis_values(std::string_view axis_yaml) {
  std::string yaml = "experiment_name: e\nhyperparameters:\n  " + std::string(axis_yaml) + "\n";
  ExperimentConfig config = parse_ok(yaml);
  if (config.axes.size() != 1) {
    ADD_FAILURE() << "expected one axis in:\n" << yaml;
    return {};
  }
  return config.axes.front().values;
}

std::vector<std::string> axis_keys(const ExperimentConfig& config) {
  std::vector<std::string> keys;
  for (const Axis& axis : config.axes) keys.push_back(axis.key);
  return keys;
}

// --- The seed's example --------------------------------------------------------------------

TEST(ParseConfig, ReadmeExampleHasSortedAxesWithTheirValues) {
  ExperimentConfig config = parse_ok(kReadmeConfig);
  EXPECT_EQ(config.source_name, "config.yaml");
  EXPECT_EQ(config.experiment_name, "sentiment_analysis1");
  EXPECT_EQ(axis_keys(config),
            (std::vector<std::string>{"activation", "batch_size", "char_embedding_size", "epochs",
                                      "fc_sizes", "learning_rate", "loss_fn", "vocab_size"}));
  std::uint64_t points = 1;
  for (const Axis& axis : config.axes) points *= axis.values.size();
  EXPECT_EQ(points, 8u);

  EXPECT_EQ(config.axes[0].values, (std::vector<json>{"relu"}));
  EXPECT_EQ(config.axes[1].values, (std::vector<json>{128, 64}));
  EXPECT_TRUE(config.axes[1].values[0].is_number_integer());
  EXPECT_EQ(config.axes[2].values, (std::vector<json>{8}));
  EXPECT_EQ(config.axes[3].values, (std::vector<json>{10}));
  EXPECT_EQ(config.axes[4].values, (std::vector<json>{json::array({2048}), json::array({4096})}));
  EXPECT_EQ(config.axes[5].values, (std::vector<json>{0.03, 0.1}));
  EXPECT_TRUE(config.axes[5].values[0].is_number_float());
  EXPECT_EQ(config.axes[6].values, (std::vector<json>{"xent"}));
  EXPECT_EQ(config.axes[7].values, (std::vector<json>{70}));
}

TEST(ParseConfig, ReadmeExampleDocumentIsTheWholeTopLevel) {
  ExperimentConfig config = parse_ok(kReadmeConfig);
  json expected = {
      {"experiment_name", "sentiment_analysis1"},
      {"dataset", "imdb.pt"},
      {"hyperparameters",
       {{"batch_size", {128, 64}},
        {"learning_rate", {0.03, 0.1}},
        {"loss_fn", {"xent"}},
        {"epochs", {10}},
        {"fc_sizes", {json::array({2048}), json::array({4096})}},
        {"vocab_size", {70}},
        {"char_embedding_size", {8}},
        {"activation", {"relu"}}}},
  };
  EXPECT_EQ(config.document, expected);
}

// --- Axes ----------------------------------------------------------------------------------

TEST(ParseConfig, ListItemsAreValuesThatAreLists) {
  EXPECT_EQ(axis_values("fc_sizes: [[2048], [4096]]"),
            (std::vector<json>{json::array({2048}), json::array({4096})}));
  EXPECT_EQ(axis_values("fc_sizes:\n    - [2048, 1024]\n    - [4096]"),
            (std::vector<json>{json::array({2048, 1024}), json::array({4096})}));
  EXPECT_EQ(axis_values("layers: [[[1, 2], [3]]]"),
            (std::vector<json>{json::parse("[[1, 2], [3]]")}));
}

TEST(ParseConfig, AnEmptyListItemIsOneValue) {
  EXPECT_EQ(axis_values("fc_sizes:\n    - []"), (std::vector<json>{json::array()}));
  EXPECT_EQ(axis_values("fc_sizes: [[], [64]]"),
            (std::vector<json>{json::array(), json::array({64})}));
}

TEST(ParseConfig, MappingItemsAreValuesThatAreMappings) {
  EXPECT_EQ(axis_values("optimizer:\n    - {name: sgd, momentum: 0.9}\n    - name: adam\n"
                        "      betas: [0.9, 0.999]"),
            (std::vector<json>{json::parse(R"({"name": "sgd", "momentum": 0.9})"),
                               json::parse(R"({"name": "adam", "betas": [0.9, 0.999]})")}));
}

TEST(ParseConfig, NonListValuesAreSingleValueAxes) {
  EXPECT_EQ(axis_values("lr: 0.1"), (std::vector<json>{0.1}));
  EXPECT_EQ(axis_values("loss: 'xent'"), (std::vector<json>{"xent"}));
  EXPECT_EQ(axis_values("optimizer: {name: sgd, lr: [0.1, 0.2]}"),
            (std::vector<json>{json::parse(R"({"name": "sgd", "lr": [0.1, 0.2]})")}));
  EXPECT_EQ(axis_values("scheduler:"), (std::vector<json>{nullptr}));
  EXPECT_EQ(axis_values("scheduler: ~"), (std::vector<json>{nullptr}));
}

TEST(ParseConfig, DocumentKeepsHyperparametersAsWritten) {
  ExperimentConfig config = parse_ok(
      "experiment_name: e\nhyperparameters:\n  lr: 0.1\n  bs: [1, 2]\n  opt: {name: sgd}\n"
      "  empty_list_value: [[]]\n");
  EXPECT_EQ(config.document["hyperparameters"],
            json::parse(R"({"lr": 0.1, "bs": [1, 2], "opt": {"name": "sgd"},
                            "empty_list_value": [[]]})"));
}

TEST(ParseConfig, EmptyHyperparametersHaveNoAxes) {
  ExperimentConfig config = parse_ok("experiment_name: e\nhyperparameters: {}\n");
  EXPECT_TRUE(config.axes.empty());
  EXPECT_EQ(config.document["hyperparameters"], json::object());
}

TEST(ParseConfig, AxesAreSortedByKeyBytewise) {
  ExperimentConfig config = parse_ok(
      "experiment_name: e\nhyperparameters:\n  b: 1\n  é: 2\n  kernel|filter_sizes: [[3], [5]]\n"
      "  _: 3\n  B: 4\n  a: 5\n  Z1: 6\n  'with space': 7\n");
  EXPECT_EQ(axis_keys(config),
            (std::vector<std::string>{"B", "Z1", "_", "a", "b", "kernel|filter_sizes", "with space",
                                      "é"}));
}

TEST(ParseConfig, KeysAreTheirTextWhateverTheirType) {
  ExperimentConfig config =
      parse_ok("experiment_name: e\nhyperparameters:\n  1: a\n  true: b\n  1.50: c\n  日本: d\n");
  EXPECT_EQ(axis_keys(config), (std::vector<std::string>{"1", "1.50", "true", "日本"}));
}

TEST(ParseConfig, OtherTopLevelKeysPassThrough) {
  ExperimentConfig config = parse_ok(
      "experiment_name: e\nhyperparameters: {}\ndataset: imdb.pt\nsplits: {train: 0.8, test: "
      "0.2}\nfiles: [a.csv, b.csv]\nseed: 7\n");
  EXPECT_EQ(config.document["dataset"], "imdb.pt");
  EXPECT_EQ(config.document["splits"], json::parse(R"({"train": 0.8, "test": 0.2})"));
  EXPECT_EQ(config.document["files"], json::parse(R"(["a.csv", "b.csv"])"));
  EXPECT_EQ(config.document["seed"], 7);
  EXPECT_EQ(config.document["experiment_name"], "e");
}

TEST(ParseConfig, ExperimentNameForms) {
  EXPECT_EQ(parse_ok("experiment_name: exp1\nhyperparameters: {}").experiment_name, "exp1");
  EXPECT_EQ(parse_ok("experiment_name: '123'\nhyperparameters: {}").experiment_name, "123");
  EXPECT_EQ(parse_ok("experiment_name: !!str 123\nhyperparameters: {}").experiment_name, "123");
  EXPECT_EQ(parse_ok("experiment_name: séance 1\nhyperparameters: {}").experiment_name, "séance 1");
}

TEST(ParseConfig, WindowsLineEndingsAndByteOrderMarkParse) {
  ExperimentConfig config = parse_ok(
      "\xEF\xBB\xBF"
      "experiment_name: e\r\nhyperparameters:\r\n  lr: [1, 2]\r\n");
  EXPECT_EQ(config.experiment_name, "e");
  ASSERT_EQ(config.axes.size(), 1u);
  EXPECT_EQ(config.axes[0].values, (std::vector<json>{1, 2}));
}

TEST(ParseConfig, AliasesRepeatAValue) {
  ExperimentConfig config = parse_ok(
      "experiment_name: e\nshared: &sizes [[2048], [4096]]\nhyperparameters:\n  fc_sizes: *sizes\n"
      "  other_sizes: *sizes\n");
  ASSERT_EQ(config.axes.size(), 2u);
  EXPECT_EQ(config.axes[0].values, config.axes[1].values);
  EXPECT_EQ(config.document["shared"], json::parse("[[2048], [4096]]"));
}

TEST(ParseConfig, AQuotedMergeKeyIsAnOrdinaryKey) {
  EXPECT_EQ(value_of("{'<<': 1}"), json::parse(R"({"<<": 1})"));
}

// --- YAML 1.2 core-schema types ------------------------------------------------------------

TEST(ScalarTypes, Integers) {
  for (auto [text, expected] : std::vector<std::pair<std::string, std::int64_t>>{{"128", 128},
                                                                                 {"-5", -5},
                                                                                 {"+5", 5},
                                                                                 {"0", 0},
                                                                                 {"-0", 0},
                                                                                 {"007", 7},
                                                                                 {"0x1f", 31},
                                                                                 {"0x1F", 31},
                                                                                 {"0o17", 15}}) {
    json value = value_of(text);
    EXPECT_TRUE(value.is_number_integer()) << text;
    EXPECT_EQ(value, expected) << text;
  }
}

TEST(ScalarTypes, Floats) {
  for (auto [text, expected] : std::vector<std::pair<std::string, double>>{{".03", 0.03},
                                                                           {"0.1", 0.1},
                                                                           {"1e-3", 0.001},
                                                                           {"1.5e3", 1500.0},
                                                                           {"1E3", 1000.0},
                                                                           {"1.", 1.0},
                                                                           {"-.5", -0.5},
                                                                           {"+.5", 0.5},
                                                                           {"6.02e+23", 6.02e23},
                                                                           {"1.0", 1.0}}) {
    json value = value_of(text);
    EXPECT_TRUE(value.is_number_float()) << text;
    EXPECT_EQ(value, expected) << text;
  }
}

TEST(ScalarTypes, InfinityAndNanAreRefusedSinceJsonCannotCarryThem) {
  for (std::string text : {".inf", ".Inf", ".INF", "+.inf", "-.inf", ".nan", ".NaN", ".NAN"}) {
    std::string message =
        parse_error("experiment_name: e\nhyperparameters:\n  x: [1.0, " + text + "]\n");
    EXPECT_EQ(message, "config.yaml:3:12: hyperparameters.x[1]: " + text +
                           " cannot be sent to workers (JSON has no infinity or NaN); quote it "
                           "to pass a string")
        << text;
  }
  EXPECT_EQ(value_of("'.inf'"), json(".inf"));
}

TEST(ScalarTypes, Booleans) {
  for (std::string text : {"true", "True", "TRUE"}) EXPECT_EQ(value_of(text), json(true)) << text;
  for (std::string text : {"false", "False", "FALSE"}) {
    EXPECT_EQ(value_of(text), json(false)) << text;
  }
}

TEST(ScalarTypes, Nulls) {
  for (std::string text : {"null", "Null", "NULL", "~", ""}) {
    EXPECT_TRUE(value_of(text).is_null()) << "'" << text << "'";
  }
}

// Neither YAML 1.2 nor YAML 1.1 reads these as anything but text. (The plain scalars YAML 1.1
// read as something else are refused: see Yaml11.)
TEST(ScalarTypes, EverythingElseIsAString) {
  for (std::string text :
       {"tRUE", "nULL", "yES",  "oN",    "0x",    "0o8",  "0x1g", "1,000",    "1e",      ".",  "e5",
        "inf",  "nan",  ".nAn", "-.nan", "1.2.3", "0:30", "_1",   "2024-1-1", "imdb.pt", "a b"}) {
    EXPECT_EQ(value_of(text), json(text)) << text;
  }
}

// --- YAML 1.1 readings (the seed read configs with PyYAML) ---------------------------------

std::string plain_value_error(const std::string& text) {
  return parse_error("experiment_name: e\nhyperparameters:\n  x: " + text + "\n");
}

TEST(Yaml11, BooleanWordsAreRefusedInEveryCaseForm) {
  for (std::string text : {"yes", "Yes", "YES", "on", "On", "ON", "y", "Y"}) {
    EXPECT_EQ(plain_value_error(text), "config.yaml:3:6: hyperparameters.x: '" + text +
                                           "' means true in YAML 1.1 and the string \"" + text +
                                           "\" in YAML 1.2; write true/false, or quote it");
  }
  for (std::string text : {"no", "No", "NO", "off", "Off", "OFF", "n", "N"}) {
    EXPECT_EQ(plain_value_error(text), "config.yaml:3:6: hyperparameters.x: '" + text +
                                           "' means false in YAML 1.1 and the string \"" + text +
                                           "\" in YAML 1.2; write true/false, or quote it");
  }
}

TEST(Yaml11, TheIssuesExampleNamesLineColumnAndKey) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: [1]\n  use_bn: yes\n"),
            "config.yaml:4:11: hyperparameters.use_bn: 'yes' means true in YAML 1.1 and the "
            "string \"yes\" in YAML 1.2; write true/false, or quote it");
  // Anywhere: list items, nested mappings, other top-level keys.
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  bn: [true, off]\n"),
            "config.yaml:3:14: hyperparameters.bn[1]: 'off' means false in YAML 1.1 and the "
            "string \"off\" in YAML 1.2; write true/false, or quote it");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {}\ndata: {shuffle: No}\n"),
            "config.yaml:3:17: data.shuffle: 'No' means false in YAML 1.1 and the string \"No\" "
            "in YAML 1.2; write true/false, or quote it");
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "experiment_name: 'on' means true",
                      parse_error("experiment_name: on\nhyperparameters: {}\n"));
}

TEST(Yaml11, NumbersYaml11ReadOtherwiseAreRefusedOnePerKind) {
  auto message = [](const std::string& text) {
    std::string full = plain_value_error(text);
    std::string prefix = "config.yaml:3:6: hyperparameters.x: ";
    EXPECT_TRUE(full.starts_with(prefix)) << full;
    return full.substr(std::min(prefix.size(), full.size()));
  };
  EXPECT_EQ(message("010"),
            "'010' means 8 in YAML 1.1 (octal) and 10 in YAML 1.2; write 8 or 10, or quote it");
  EXPECT_EQ(message("-0755"),
            "'-0755' means -493 in YAML 1.1 (octal) and -755 in YAML 1.2; "
            "write -493 or -755, or quote it");
  EXPECT_EQ(message("0_7"),
            "'0_7' means 7 in YAML 1.1 (octal) and the string \"0_7\" in YAML "
            "1.2; write 7, or quote it");
  EXPECT_EQ(message("1_000"),
            "'1_000' means 1000 in YAML 1.1 and the string \"1_000\" in YAML "
            "1.2; write 1000, or quote it");
  EXPECT_EQ(message("-1_000_000"),
            "'-1_000_000' means -1000000 in YAML 1.1 and the string "
            "\"-1_000_000\" in YAML 1.2; write -1000000, or quote it");
  EXPECT_EQ(message("1_000.5"),
            "'1_000.5' means 1000.5 in YAML 1.1 and the string \"1_000.5\" "
            "in YAML 1.2; write 1000.5, or quote it");
  EXPECT_EQ(message("1:30"),
            "'1:30' means 90 in YAML 1.1 (base 60) and the string \"1:30\" in "
            "YAML 1.2; write 90, or quote it");
  EXPECT_EQ(message("190:20:30"),
            "'190:20:30' means 685230 in YAML 1.1 (base 60) and the string "
            "\"190:20:30\" in YAML 1.2; write 685230, or quote it");
  EXPECT_EQ(message("1:30.5"),
            "'1:30.5' means 90.5 in YAML 1.1 (base 60) and the string "
            "\"1:30.5\" in YAML 1.2; write 90.5, or quote it");
  EXPECT_EQ(message("0b1010"),
            "'0b1010' means 10 in YAML 1.1 (binary) and the string "
            "\"0b1010\" in YAML 1.2; write 10, or quote it");
  EXPECT_EQ(message("-0x1F"),
            "'-0x1F' means -31 in YAML 1.1 and the string \"-0x1F\" in YAML "
            "1.2; write -31, or quote it");
  EXPECT_EQ(message("0xFF_FF"),
            "'0xFF_FF' means 65535 in YAML 1.1 and the string \"0xFF_FF\" "
            "in YAML 1.2; write 65535, or quote it");
  EXPECT_EQ(message("0b1111111111111111111111111111111111111111111111111111111111111111111"),
            "'0b1111111111111111111111111111111111111111111111111111111111111111111' means a "
            "number in YAML 1.1 (binary) and the string "
            "\"0b1111111111111111111111111111111111111111111111111111111111111111111\" in YAML "
            "1.2; write it in decimal, or quote it");
}

TEST(Yaml11, DatesAreRefused) {
  EXPECT_EQ(plain_value_error("2024-01-31"),
            "config.yaml:3:6: hyperparameters.x: '2024-01-31' means a date in YAML 1.1 and the "
            "string \"2024-01-31\" in YAML 1.2; quote it");
  for (std::string text : {"2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
                           "2001-12-15T02:59:43.1Z", "2002-12-14 2:59:43"}) {
    EXPECT_PRED_FORMAT2(::testing::IsSubstring, "' means a date and time in YAML 1.1",
                        plain_value_error(text));
  }
}

TEST(Yaml11, ScalarsBothVersionsReadAlikeAreKept) {
  EXPECT_EQ(value_of("007"), json(7));
  EXPECT_EQ(value_of("00"), json(0));
  EXPECT_EQ(value_of("-0"), json(0));
  EXPECT_EQ(value_of("0x1F"), json(31));
  EXPECT_EQ(value_of("+12"), json(12));
  EXPECT_EQ(value_of("1."), json(1.0));
  EXPECT_EQ(value_of(".5"), json(0.5));
  EXPECT_EQ(value_of("6.02e+23"), json(6.02e23));
  EXPECT_EQ(value_of("true"), json(true));
  EXPECT_EQ(value_of("False"), json(false));
}

// PyYAML left these as text; YAML 1.2's number is what whoever wrote them meant.
TEST(Yaml11, NumbersPyYamlLeftAsTextAreKept) {
  EXPECT_EQ(value_of("1e-3"), json(0.001));
  EXPECT_EQ(value_of("1.5e3"), json(1500.0));
  EXPECT_EQ(value_of("-.5"), json(-0.5));
  EXPECT_EQ(value_of("0o17"), json(15));
  EXPECT_EQ(value_of("08"), json(8));
}

TEST(Yaml11, QuotedAndTaggedScalarsAreNeverRefused) {
  for (std::string text : {"yes", "no", "on", "off", "y", "n", "010", "1_000", "1:30", "0b1010",
                           "-0x1F", "2024-01-31"}) {
    EXPECT_EQ(value_of("'" + text + "'"), json(text)) << text;
    EXPECT_EQ(value_of("\"" + text + "\""), json(text)) << text;
    EXPECT_EQ(value_of("!!str " + text), json(text)) << text;
  }
  EXPECT_EQ(value_of("[\"no\", 'off']"), json::parse(R"(["no", "off"])"));
}

TEST(Yaml11, PlainKeysAreCheckedToo) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  on: [1]\n"),
            "config.yaml:3:3: hyperparameters.on: the key 'on' means true in YAML 1.1 and the "
            "string \"on\" in YAML 1.2; write true/false, or quote it");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  010: [1]\n"),
            "config.yaml:3:3: hyperparameters.010: the key '010' means 8 in YAML 1.1 (octal) and "
            "10 in YAML 1.2; write 8 or 10, or quote it");
  // PyYAML reads y and n as text, as YAML 1.2 does, and they are common names.
  ExperimentConfig config =
      parse_ok("experiment_name: e\nhyperparameters:\n  n: [1, 2]\n  y: [3]\n  'on': [4]\n");
  EXPECT_EQ(axis_keys(config), (std::vector<std::string>{"n", "on", "y"}));
}

TEST(ScalarTypes, QuotedAndBlockScalarsAreAlwaysStrings) {
  EXPECT_EQ(value_of("'128'"), json("128"));
  EXPECT_EQ(value_of("\"true\""), json("true"));
  EXPECT_EQ(value_of("'~'"), json("~"));
  EXPECT_EQ(value_of("'null'"), json("null"));
  EXPECT_EQ(value_of("''"), json(""));
  EXPECT_EQ(value_of("\"1e3\""), json("1e3"));
  EXPECT_EQ(value_of("'.inf'"), json(".inf"));
  EXPECT_EQ(value_of("|\n  128\n  64"), json("128\n64\n"));
  EXPECT_EQ(value_of(">-\n  128"), json("128"));
}

TEST(ScalarTypes, ExplicitTags) {
  EXPECT_EQ(value_of("!!str 123"), json("123"));
  EXPECT_EQ(value_of("!!str true"), json("true"));
  EXPECT_EQ(value_of("!!str ~"), json("~"));
  EXPECT_EQ(value_of("!!str"), json(""));
  EXPECT_EQ(value_of("! 12"), json("12"));
  EXPECT_EQ(value_of("!<tag:yaml.org,2002:str> 5"), json("5"));
  EXPECT_EQ(value_of("!!int '12'"), json(12));
  EXPECT_EQ(value_of("!!bool 'True'"), json(true));
  EXPECT_TRUE(value_of("!!null ''").is_null());
  EXPECT_TRUE(value_of("!!null ~").is_null());
  json one = value_of("!!float 1");
  EXPECT_TRUE(one.is_number_float());
  EXPECT_EQ(one, 1.0);
  EXPECT_EQ(value_of("!!seq [1]"), json::array({1}));
  EXPECT_EQ(value_of("!!map {a: 1}"), json::parse(R"({"a": 1})"));
}

// Integers are exact through uint64; beyond that they become floats, as nlohmann's own JSON
// parser reads them (and as JSON readers in most languages do).
TEST(ScalarTypes, LargeIntegers) {
  json int64_max = value_of("9223372036854775807");
  EXPECT_TRUE(int64_max.is_number_integer() && !int64_max.is_number_unsigned());
  EXPECT_EQ(int64_max.get<std::int64_t>(), std::numeric_limits<std::int64_t>::max());
  json int64_min = value_of("-9223372036854775808");
  EXPECT_EQ(int64_min.get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());

  json above_int64 = value_of("9223372036854775808");
  EXPECT_TRUE(above_int64.is_number_unsigned());
  EXPECT_EQ(above_int64.get<std::uint64_t>(), 9223372036854775808u);
  EXPECT_EQ(value_of("18446744073709551615").get<std::uint64_t>(),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(value_of("0xffffffffffffffff").get<std::uint64_t>(),
            std::numeric_limits<std::uint64_t>::max());

  json above_uint64 = value_of("18446744073709551616");
  EXPECT_TRUE(above_uint64.is_number_float());
  EXPECT_EQ(above_uint64.dump(), "1.8446744073709552e+19");
  json below_int64 = value_of("-9223372036854775809");
  EXPECT_TRUE(below_int64.is_number_float());
  EXPECT_EQ(below_int64.get<double>(), -9223372036854775808.0);
}

TEST(ScalarTypes, StringsStayUtf8) {
  EXPECT_EQ(value_of("héllo wörld"), json("h\u00e9llo w\u00f6rld"));
  EXPECT_EQ(value_of("'日本語'"), json("日本語"));
  EXPECT_EQ(value_of("\"\\u00e9\""), json("\u00e9"));
  EXPECT_EQ(value_of("\"\\U0001F600\""), json("\U0001F600"));
  EXPECT_EQ(value_of("'😀'").dump(), "\"\U0001F600\"");
}

// --- Errors, each with its exact position ---------------------------------------------------

// The position is yaml-cpp's; its wording may grow between versions (0.7 and 0.8 differ in
// places), so only its phrase is pinned, not the whole text.
void expect_yaml_syntax_error(std::string_view yaml, const std::string& position,
                              const std::string& yaml_cpp_phrase) {
  std::string message = parse_error(yaml);
  EXPECT_TRUE(message.starts_with(position + ": invalid YAML: ")) << message;
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, yaml_cpp_phrase, message);
}

TEST(ConfigErrors, YamlSyntax) {
  expect_yaml_syntax_error("experiment_name: e\nhyperparameters:\n  lr: a: b\n", "config.yaml:3:8",
                           "illegal map value");
  expect_yaml_syntax_error("experiment_name: e\nhyperparameters:\n\tlr: [1]\n", "config.yaml:3:4",
                           "illegal map value");
  expect_yaml_syntax_error("experiment_name: e\nhyperparameters:\n  lr:\n    - 1\n   - 2\n",
                           "config.yaml:5:4", "end of map not found");
  expect_yaml_syntax_error("experiment_name: e\nhyperparameters:\n  lr: [1, 2\n  bs: [3]\n",
                           "config.yaml:4:5", "end of sequence flow not found");
  expect_yaml_syntax_error("experiment_name: e\nhyperparameters:\n  lr: *undefined\n",
                           "config.yaml:3:7", "the referenced anchor is not defined");
}

TEST(ConfigErrors, EmptyFile) {
  const std::string message =
      "config.yaml:1:1: (top level): the config is empty; it needs experiment_name and "
      "hyperparameters";
  EXPECT_EQ(parse_error(""), message);
  EXPECT_EQ(parse_error("# nothing but a comment\n\n"), message);
  EXPECT_EQ(parse_error("---\n"),
            "config.yaml:2:1: (top level): the config is empty; it needs experiment_name and "
            "hyperparameters");
}

TEST(ConfigErrors, TopLevelNotAMapping) {
  EXPECT_EQ(parse_error("# a list\n- experiment_name\n- hyperparameters\n"),
            "config.yaml:2:1: (top level): the config must be a mapping with experiment_name and "
            "hyperparameters, not a list");
  EXPECT_EQ(parse_error("hello\n"),
            "config.yaml:1:1: (top level): the config must be a mapping with experiment_name and "
            "hyperparameters, not the scalar 'hello'");
}

TEST(ConfigErrors, MoreThanOneDocument) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {}\n---\nexperiment_name: f\n"),
            "config.yaml:3:1: (top level): a config is one YAML document, but a second one "
            "starts here");
}

TEST(ConfigErrors, MissingExperimentName) {
  EXPECT_EQ(parse_error("# header\ndataset: x\nhyperparameters:\n  lr: [1]\n"),
            "config.yaml:2:1: experiment_name: missing; every config names its experiment, e.g. "
            "experiment_name: mnist1");
}

TEST(ConfigErrors, ExperimentNameNotText) {
  EXPECT_EQ(parse_error("experiment_name: [a, b]\nhyperparameters: {}\n"),
            "config.yaml:1:18: experiment_name: must be text, not a list");
  EXPECT_EQ(parse_error("experiment_name:\n  - a\nhyperparameters: {}\n"),
            "config.yaml:2:3: experiment_name: must be text, not a list");
  EXPECT_EQ(parse_error("experiment_name: {a: 1}\nhyperparameters: {}\n"),
            "config.yaml:1:18: experiment_name: must be text, not a mapping");
  EXPECT_EQ(parse_error("experiment_name: 123\nhyperparameters: {}\n"),
            "config.yaml:1:18: experiment_name: must be text, not a number; quote it to use it "
            "as a name: '123'");
  EXPECT_EQ(parse_error("hyperparameters: {}\nexperiment_name: 1.5\n"),
            "config.yaml:2:18: experiment_name: must be text, not a number; quote it to use it "
            "as a name: '1.5'");
  EXPECT_EQ(parse_error("experiment_name: true\nhyperparameters: {}\n"),
            "config.yaml:1:18: experiment_name: must be text, not a boolean; quote it to use it "
            "as a name: 'true'");
}

TEST(ConfigErrors, ExperimentNameEmpty) {
  const std::string at_key =
      "config.yaml:1:1: experiment_name: must not be empty; name the experiment, e.g. "
      "experiment_name: mnist1";
  EXPECT_EQ(parse_error("experiment_name:\nhyperparameters: {}\n"), at_key);
  EXPECT_EQ(parse_error("experiment_name: ~\nhyperparameters: {}\n"), at_key);
  EXPECT_EQ(parse_error("experiment_name: ''\nhyperparameters: {}\n"),
            "config.yaml:1:18: experiment_name: must not be empty; name the experiment, e.g. "
            "experiment_name: mnist1");
}

TEST(ConfigErrors, MissingHyperparameters) {
  EXPECT_EQ(parse_error("\nexperiment_name: e\ndataset: x\n"),
            "config.yaml:2:1: hyperparameters: missing; list the grid's axes under "
            "hyperparameters:");
}

TEST(ConfigErrors, HyperparametersNotAMapping) {
  const std::string expected_start =
      "hyperparameters: must be a mapping from each hyperparameter's name to its values, not ";
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: [lr, bs]\n"),
            "config.yaml:2:18: " + expected_start + "a list");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  - lr\n"),
            "config.yaml:3:3: " + expected_start + "a list");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: 5\n"),
            "config.yaml:2:18: " + expected_start + "the scalar '5'");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n\ndataset: x\n"),
            "config.yaml:2:1: " + expected_start + "null");
}

TEST(ConfigErrors, AxisWithoutValues) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  bs: [1, 2]\n  lr: []\n"),
            "config.yaml:4:7: hyperparameters.lr: an axis needs at least one value");
}

TEST(ConfigErrors, RepeatedAxisValue) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  bs: [64, 128, 64]\n"),
            "config.yaml:3:17: hyperparameters.bs[2]: repeats the value of item 0 (64); grid "
            "points must differ");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  fc:\n    - [1, 2]\n"
                        "    - [1, 2]\n"),
            "config.yaml:5:7: hyperparameters.fc[1]: repeats the value of item 0 ([1,2]); grid "
            "points must differ");
  // Distinct in JSON, so distinct points.
  EXPECT_EQ(axis_values("bs: [64, '64', 64.0]"), (std::vector<json>{64, "64", 64.0}));
}

TEST(ConfigErrors, DuplicateTopLevelKey) {
  EXPECT_EQ(parse_error("experiment_name: a\nhyperparameters: {lr: [1]}\nexperiment_name: b\n"),
            "config.yaml:3:1: experiment_name: duplicate key; first defined at line 1");
  EXPECT_EQ(parse_error("experiment_name: a\ndataset: x\nhyperparameters: {}\n\"dataset\": y\n"),
            "config.yaml:4:1: dataset: duplicate key; first defined at line 2");
}

TEST(ConfigErrors, DuplicateHyperparameter) {
  EXPECT_EQ(
      parse_error("experiment_name: e\nhyperparameters:\n  lr: [1]\n  bs: [2]\n  'lr': [3]\n"),
      "config.yaml:5:3: hyperparameters.lr: duplicate key; first defined at line 3");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {lr: 1, lr: 2}\n"),
            "config.yaml:2:26: hyperparameters.lr: duplicate key; first defined at line 2");
}

TEST(ConfigErrors, DuplicateKeyInsideValues) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  optimizer:\n    - {name: sgd}\n"
                        "    - {name: adam, beta: 0.9, beta: 0.99}\n"),
            "config.yaml:5:31: hyperparameters.optimizer[1].beta: duplicate key; first defined "
            "at line 5");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {}\ndata:\n  path: a\n  path: b\n"),
            "config.yaml:5:3: data.path: duplicate key; first defined at line 4");
}

TEST(ConfigErrors, KeyNotText) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {}\n[a, b]: 1\n"),
            "config.yaml:3:1: (top level): a key must be text, not a list");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  ? {a: 1}\n  : [1]\n"),
            "config.yaml:3:5: hyperparameters: a key must be text, not a mapping");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  ~: [1]\n"),
            "config.yaml:3:3: hyperparameters: a key must be text, not null");
}

TEST(ConfigErrors, MergeKey) {
  EXPECT_EQ(parse_error("experiment_name: e\nbase: &base {lr: [1, 2]}\nhyperparameters:\n"
                        "  bs: [1]\n  <<: *base\n"),
            "config.yaml:5:3: hyperparameters.<<: merge keys are not supported (YAML 1.2 has "
            "none); write the keys out");
}

TEST(ConfigErrors, AliasCycle) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: &loop [1, *loop]\n"),
            "config.yaml:3:7: hyperparameters.lr[1]: an alias refers to a collection that "
            "contains it");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: {}\nnode: &node {next: *node}\n"),
            "config.yaml:3:7: node.next: an alias refers to a collection that contains it");
}

TEST(ConfigErrors, AliasExpansionBomb) {
  std::string yaml =
      "experiment_name: e\nhyperparameters: {}\nl0: &l0 [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n";
  for (int level = 1; level <= 7; ++level) {
    std::string previous = "*l" + std::to_string(level - 1);
    yaml += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int copy = 0; copy < 10; ++copy) yaml += (copy ? ", " : "") + previous;
    yaml += "]\n";
  }
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "the config expands to more than 1000000 values",
                      parse_error(yaml));
}

TEST(ConfigErrors, NestingTooDeep) {
  std::string nested = std::string(200, '[') + std::string(200, ']');
  std::string path = "hyperparameters.lr";
  for (int level = 0; level < 128; ++level) path += "[0]";
  // The 129th list opens at column 7 + 128.
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: " + nested + "\n"),
            "config.yaml:3:135: " + path + ": values nest deeper than 128 levels");
  // Deeper still, yaml-cpp's own guard stops it while parsing.
  std::string deeper = std::string(3000, '[') + std::string(3000, ']');
  std::string message = parse_error("experiment_name: e\nhyperparameters:\n  lr: " + deeper + "\n");
  EXPECT_TRUE(message.starts_with("config.yaml:3:")) << message;
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, ": invalid YAML: nested too deeply", message);
}

TEST(ConfigErrors, UnsupportedTag) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!binary aGVsbG8=\n"),
            "config.yaml:3:7: hyperparameters.lr: unsupported tag !!binary; use !!str, !!int, "
            "!!float, !!bool or !!null");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !custom 1\n"),
            "config.yaml:3:7: hyperparameters.lr: unsupported tag !custom; use !!str, !!int, "
            "!!float, !!bool or !!null");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!set {a, b}\n"),
            "config.yaml:3:7: hyperparameters.lr: unsupported tag !!set");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters: !!set {lr, bs}\n"),
            "config.yaml:2:18: hyperparameters: unsupported tag !!set");
}

TEST(ConfigErrors, TagDoesNotMatchText) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!int abc\n"),
            "config.yaml:3:7: hyperparameters.lr: 'abc' is not a valid !!int");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!float 1.2.3\n"),
            "config.yaml:3:7: hyperparameters.lr: '1.2.3' is not a valid !!float");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!bool yes\n"),
            "config.yaml:3:7: hyperparameters.lr: 'yes' is not a valid !!bool");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: !!null 0\n"),
            "config.yaml:3:7: hyperparameters.lr: '0' is not a valid !!null");
}

TEST(ConfigErrors, NumberOutOfRange) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  lr: [1, 1e400]\n"),
            "config.yaml:3:11: hyperparameters.lr[1]: 1e400 is out of range for a 64-bit number");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  mask: 0x10000000000000000\n"),
            "config.yaml:3:9: hyperparameters.mask: 0x10000000000000000 is out of range for a "
            "64-bit number");
}

TEST(ConfigErrors, InvalidUtf8) {
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  loss: ['ok', x\xC3(]\n"),
            "config.yaml:3:16: hyperparameters.loss[1]: not valid UTF-8");
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n  bad\xFFkey: 1\n"),
            "config.yaml:3:3: hyperparameters: a key is not valid UTF-8");
}

TEST(ConfigErrors, AStrayCommaIsAnErrorNotEndlessEmptyDocuments) {
  // yaml-cpp's LoadAll made a new empty document at the ',' for ever: 3.8 GB in 6 s.
  const std::string message =
      "config.yaml:1:1: invalid YAML: unexpected ',' outside a [list] or {mapping}";
  EXPECT_EQ(parse_error(","), message);
  EXPECT_EQ(parse_error(",\n"), message);
  EXPECT_EQ(parse_error("--- ,"),
            "config.yaml:1:5: invalid YAML: unexpected ',' outside a [list] or {mapping}");
  EXPECT_EQ(parse_error("- a\n,"),
            "config.yaml:2:1: invalid YAML: unexpected ',' outside a [list] or {mapping}");
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "invalid YAML",
                      parse_error("experiment_name: e\nhyperparameters: {}\n,\n"));
}

TEST(ConfigErrors, MoreTextThanAConfigMayHave) {
  std::string yaml = "experiment_name: e\nhyperparameters: {}\npadding: '";
  yaml += std::string(kMaxConfigBytes - yaml.size() - 2, 'x') + "'\n";
  ASSERT_EQ(yaml.size(), kMaxConfigBytes);
  EXPECT_TRUE(parse_config(yaml, "config.yaml"));
  yaml += "\n";
  EXPECT_EQ(parse_error(yaml),
            "config.yaml:1:1: (top level): the config is larger than 16 MiB, the most a config "
            "may be");
}

TEST(ConfigErrors, MoreNodesThanAConfigMayHave) {
  // Each costs yaml-cpp about a kilobyte once built: refused before building any.
  std::string items;
  for (std::size_t i = 0; i < kMaxParsedNodes; ++i) items += "0,";
  std::string message =
      parse_error("experiment_name: e\nhyperparameters: {}\nmany: [" + items + "]\n");
  EXPECT_TRUE(message.starts_with("config.yaml:3:")) << message;
  EXPECT_PRED_FORMAT2(::testing::IsSubstring,
                      ": (top level): the config has more than 250000 values; a grid's axes need "
                      "far fewer",
                      message);
}

TEST(ConfigErrors, AliasesRepeatingLongTextAreRefused) {
  // 1 MiB, repeated 100 times: few values, but 100 MiB once expanded.
  std::string yaml = "experiment_name: e\nhyperparameters: {}\nbig: &big '" +
                     std::string(1 << 20, 'x') +
                     "'\nten: &ten [*big, *big, *big, *big, *big, "
                     "*big, *big, *big, *big, *big]\nhundred: [*ten, *ten, *ten, *ten, *ten, "
                     "*ten, *ten, *ten, *ten, *ten]\n";
  EXPECT_PRED_FORMAT2(::testing::IsSubstring,
                      "the config expands to more than 64 MiB of text; are aliases repeating "
                      "large parts of it?",
                      parse_error(yaml));
}

TEST(ConfigErrors, ControlCharactersAndInvalidUtf8AreEscapedInMessages) {
  // A key that would clear the screen, in an error that quotes its path.
  std::string message = parse_error(
      "experiment_name: e\nhyperparameters:\n  \"\\e[2J\\u009b31m\\u202e\": [1]\n  "
      "\"\\e[2J\\u009b31m\\u202e\": [2]\n");
  EXPECT_EQ(message,
            "config.yaml:4:3: hyperparameters.\\x1b[2J\\u009b31m\\u202e: duplicate key; first "
            "defined at line 3");
  // The value quoted in a message, and a source name that is not UTF-8.
  Result<ExperimentConfig> config =
      parse_config("experiment_name: !!int \"\\a\\x7f\"\nhyperparameters: {}\n", "conf\xff.yaml");
  ASSERT_FALSE(config);
  EXPECT_EQ(config.status().message(),
            "conf\\xff.yaml:1:18: experiment_name: '\\x07\\x7f' is not a valid !!int");
}

TEST(GridSize, CountIsTheProductOfTheAxes) {
  EXPECT_EQ(grid_point_count(parse_ok(kReadmeConfig)), 8u);
  EXPECT_EQ(grid_point_count(parse_ok("experiment_name: e\nhyperparameters: {}\n")), 1u);
}

TEST(GridSize, AGridOverTheLimitIsRefusedWithItsCount) {
  std::string yaml = "experiment_name: e\n# eight axes of 100\nhyperparameters:\n  v: &v [";
  for (int i = 0; i < 100; ++i) yaml += (i ? ", " : "") + std::to_string(i);
  yaml += "]\n";
  for (int key = 0; key < 7; ++key) yaml += "  k" + std::to_string(key) + ": *v\n";
  ExperimentConfig config = parse_ok(yaml);
  EXPECT_EQ(grid_point_count(config), 10'000'000'000'000'000u);
  EXPECT_EQ(check_grid_size(config, 2'000'000).message(),
            "config.yaml:3:1: hyperparameters: the grid has 10,000,000,000,000,000 points (100 x "
            "100 x 100 x 100 x 100 x 100 x 100 x 100), more than --max-grid-points allows "
            "(2,000,000); make the grid smaller, or raise --max-grid-points if it will start in "
            "time");
  EXPECT_TRUE(check_grid_size(config, 10'000'000'000'000'000u));
  EXPECT_TRUE(check_grid_size(parse_ok(kReadmeConfig), 8));
  EXPECT_FALSE(check_grid_size(parse_ok(kReadmeConfig), 7));
}

TEST(CommonConfig, IsEverythingButTheNameAndHyperparametersAsCanonicalJson) {
  EXPECT_EQ(common_config_json(parse_ok(kReadmeConfig)), R"({"dataset":"imdb.pt"})");
  EXPECT_EQ(common_config_json(parse_ok("experiment_name: e\nhyperparameters: {lr: [1]}\nz: "
                                        "{b: 1, a: [2]}\ndataset: x\n")),
            R"({"dataset":"x","z":{"a":[2],"b":1}})");
  EXPECT_EQ(common_config_json(ExperimentConfig{}), "{}");
}

TEST(ConfigErrors, GridTooLarge) {
  std::string axes;
  for (int axis = 0; axis < 63; ++axis) axes += "  a" + std::to_string(axis) + ": [0, 1]\n";
  EXPECT_TRUE(parse_config("experiment_name: e\nhyperparameters:\n" + axes, "config.yaml"));
  axes += "  a63: [0, 1]\n";
  EXPECT_EQ(parse_error("experiment_name: e\nhyperparameters:\n" + axes),
            "config.yaml:2:1: hyperparameters: the grid has more than 2^64 - 1 points");
}

// --- load_config ---------------------------------------------------------------------------

class LoadConfig : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, std::string_view contents) {
    std::filesystem::path path = dir_.path() / name;
    write_file(path, std::string(contents));
    return path;
  }

  TempDir dir_;
};

TEST_F(LoadConfig, ReadsTheFileAndNamesItAsTheSource) {
  std::filesystem::path path = write("config.yaml", kReadmeConfig);
  Result<ExperimentConfig> config = load_config(path);
  ASSERT_TRUE(config) << config.status().message();
  EXPECT_EQ(config->source_name, path.string());
  EXPECT_EQ(config->experiment_name, "sentiment_analysis1");
  EXPECT_EQ(config->axes.size(), 8u);
}

TEST_F(LoadConfig, ErrorsNameThePath) {
  std::filesystem::path path =
      write("config.yaml", "experiment_name: e\nhyperparameters:\n  lr: []\n");
  Result<ExperimentConfig> config = load_config(path);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.status().message(),
            path.string() + ":3:7: hyperparameters.lr: an axis needs at least one value");
}

TEST_F(LoadConfig, AHugeFileIsNotReadWhole) {
  std::filesystem::path path = write("config.yaml", std::string(kMaxConfigBytes * 4, '#'));
  Result<ExperimentConfig> config = load_config(path);
  ASSERT_FALSE(config);
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "the config is larger than 16 MiB",
                      config.status().message());
}

TEST_F(LoadConfig, MissingFile) {
  std::filesystem::path path = dir_.path() / "missing.yaml";
  Result<ExperimentConfig> config = load_config(path);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            path.string() + ": cannot read the config file: No such file or directory");
}

TEST_F(LoadConfig, UnreadableFile) {
  Result<ExperimentConfig> config = load_config(dir_.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            dir_.path().string() + ": cannot read the config file: Is a directory");
}

}  // namespace
}  // namespace gridexp
