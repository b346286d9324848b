#include "common/gpu_sample.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

using nlohmann::json;

json sample(json index, json utilization, json used, json total) {
  return {{"index", index},
          {"utilization_percent", utilization},
          {"memory_used_bytes", used},
          {"memory_total_bytes", total}};
}

TEST(GpuSample, SurvivesARoundTripThroughJson) {
  std::vector<GpuSample> samples = {{0, 97, 3ULL << 30, 80ULL << 30}, {5, 0, 0, 1}};
  Result<std::vector<GpuSample>> parsed = parse_gpu_samples(gpu_samples_json(samples));
  ASSERT_TRUE(parsed) << parsed.status().message();
  EXPECT_EQ(*parsed, samples);
  EXPECT_EQ(gpu_samples_json({}), json::array());
}

TEST(GpuSample, MalformedTelemetryIsRefusedNamingTheField) {
  std::vector<json> malformed = {
      json("all"),
      json::array({json(1)}),
      json::array({sample(-1, 5, 0, 1)}),
      json::array({sample(1024, 5, 0, 1)}),
      json::array({sample(0, 101, 0, 1)}),
      json::array({sample(0, 5, 2, 1)}),
      json::array({sample(0, 5, -1, 1)}),
      json::array({sample(0, 5.5, 0, 1)}),
      json::array({sample(0, "5", 0, 1)}),
      json::array({{{"index", 0}, {"utilization_percent", 5}, {"memory_used_bytes", 0}}}),
  };
  json too_many = json::array();
  for (std::size_t i = 0; i <= kMaxGpuSamples; ++i) too_many.push_back(sample(0, 1, 0, 1));
  malformed.push_back(too_many);
  for (const json& value : malformed) {
    Result<std::vector<GpuSample>> parsed = parse_gpu_samples(value);
    ASSERT_FALSE(parsed) << value.dump();
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("\"gpus\""), std::string::npos);
  }
}

}  // namespace
}  // namespace gridexp
