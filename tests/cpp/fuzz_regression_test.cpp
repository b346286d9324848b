// Regression tests for inputs the fuzz targets (tests/fuzz, docs/testing.md) found to crash,
// kept here when the component's own test file belongs to another part of the suite.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <variant>

#include "executor/protocol.h"
#include "server/http_util.h"

namespace gridexp {
namespace {

std::string run_command_with_nesting(int depth) {
  return R"({"type": "run", "trial": {"id": "3f2a9c1e8b7d6a50", "hyperparameters": {"x": )" +
         std::string(depth, '[') + std::string(depth, ']') + "}}}";
}

// executor_command_fuzz: a run command 100,000 brackets deep overflowed the stack while the
// trial was copied out of the parsed line.
TEST(FuzzRegression, ExecutorCommandNested100000DeepIsAProtocolError) {
  Command command = parse_command(run_command_with_nesting(100'000));
  EXPECT_TRUE(std::holds_alternative<ProtocolError>(command));
}

// A config nests at most 128 deep: its trials still reach the executor.
TEST(FuzzRegression, ExecutorCommandAsDeepAsAConfigAllowsIsARun) {
  Command command = parse_command(run_command_with_nesting(128));
  ASSERT_TRUE(std::holds_alternative<RunCommand>(command));
  EXPECT_EQ(std::get<RunCommand>(command).trial_id, "3f2a9c1e8b7d6a50");
}

// server_request_fuzz: a metric point with "time_ms": -9223372036854775808, read back with
// GET /api/v1/trials/{id}/metrics, overflowed a signed subtraction (undefined behaviour) while
// the time was formatted.
TEST(FuzzRegression, Iso8601UtcOfTheExtremeTimesDoesNotOverflow) {
  EXPECT_TRUE(iso8601_utc(std::numeric_limits<std::int64_t>::min()).ends_with(".192Z"));
  EXPECT_TRUE(iso8601_utc(std::numeric_limits<std::int64_t>::max()).ends_with(".807Z"));
  EXPECT_EQ(iso8601_utc(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(iso8601_utc(-1000), "1969-12-31T23:59:59.000Z");
}

}  // namespace
}  // namespace gridexp
