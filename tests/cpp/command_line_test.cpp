// Tests for the command-line splitting both programs share.
#include "common/command_line.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

bool takes_value(const std::string& name) { return name == "port" || name == "lease_seconds"; }

TEST(SplitCommandLine, FormsAndNormalizedNames) {
  Result<std::vector<CommandLineItem>> items = split_command_line(
      {"dir", "--port", "8030", "--lease-seconds=5", "--save_models=False", "--flag", "-h"},
      takes_value);
  ASSERT_TRUE(items) << items.status().message();
  ASSERT_EQ(items->size(), 6u);
  EXPECT_EQ((*items)[0].name, "");
  EXPECT_EQ((*items)[0].value, "dir");
  EXPECT_EQ((*items)[1].name, "port");
  EXPECT_EQ((*items)[1].value, "8030");
  EXPECT_EQ((*items)[2].name, "lease_seconds");
  EXPECT_EQ((*items)[2].spelling, "--lease-seconds");
  EXPECT_EQ((*items)[2].value, "5");
  EXPECT_EQ((*items)[3].name, "save_models");
  EXPECT_EQ((*items)[3].value, "False");
  EXPECT_EQ((*items)[4].name, "flag");
  EXPECT_FALSE((*items)[4].value);  // takes no value: the next argument is not swallowed
  EXPECT_EQ((*items)[5].name, "help");
}

TEST(SplitCommandLine, AnEmptyInlineValueIsAValue) {
  Result<std::vector<CommandLineItem>> items = split_command_line({"--port="}, takes_value);
  ASSERT_TRUE(items);
  EXPECT_EQ((*items)[0].value, "");
}

TEST(SplitCommandLine, Errors) {
  Result<std::vector<CommandLineItem>> missing = split_command_line({"--port"}, takes_value);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.status().message(), "--port needs a value");
  Result<std::vector<CommandLineItem>> short_option = split_command_line({"-x"}, takes_value);
  ASSERT_FALSE(short_option);
  EXPECT_EQ(short_option.status().message(), "unknown option -x (see --help)");
  EXPECT_FALSE(split_command_line({"--"}, takes_value));
}

}  // namespace
}  // namespace gridexp
