#include "worker/gpu_telemetry.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace gridexp {
namespace {

constexpr std::uint64_t kGiB = 1ULL << 30;

class GpuTelemetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("FAKE_NVML_GPUS", "97:3221225472:85899345920,3:1073741824:85899345920", 1);
    ::unsetenv("FAKE_NVML_FAIL_INIT");
  }
};

TEST_F(GpuTelemetryTest, ReadsEveryGpuOfTheLibrary) {
  std::unique_ptr<GpuTelemetry> telemetry = GpuTelemetry::open(FAKE_NVML_LIBRARY);
  ASSERT_NE(telemetry, nullptr);
  EXPECT_EQ(telemetry->device_count(), 2);
  std::vector<GpuSample> expected = {{0, 97, 3 * kGiB, 80 * kGiB}, {1, 3, kGiB, 80 * kGiB}};
  EXPECT_EQ(telemetry->read(), expected);
}

TEST_F(GpuTelemetryTest, ReadsOnlyTheGpusAsked) {
  std::unique_ptr<GpuTelemetry> telemetry = GpuTelemetry::open(FAKE_NVML_LIBRARY);
  ASSERT_NE(telemetry, nullptr);
  std::vector<GpuSample> second = {{1, 3, kGiB, 80 * kGiB}};
  EXPECT_EQ(telemetry->read({1}), second);
  EXPECT_TRUE(telemetry->read({2}).empty());
  EXPECT_TRUE(telemetry->read({-1}).empty());
}

TEST_F(GpuTelemetryTest, NoLibraryOrAFailedInitMeansNoTelemetry) {
  EXPECT_EQ(GpuTelemetry::open("/nonexistent/libnvidia-ml.so.1"), nullptr);
  // A library without NVML's functions.
  EXPECT_EQ(GpuTelemetry::open("libc.so.6"), nullptr);
  ::setenv("FAKE_NVML_FAIL_INIT", "1", 1);
  EXPECT_EQ(GpuTelemetry::open(FAKE_NVML_LIBRARY), nullptr);
}

TEST(GpuTelemetryLibrary, TheEnvironmentNamesAReplacement) {
  ::unsetenv("GRIDEXP_NVML_LIBRARY");
  EXPECT_EQ(gpu_telemetry_library(), "libnvidia-ml.so.1");
  ::setenv("GRIDEXP_NVML_LIBRARY", "/tmp/fake.so", 1);
  EXPECT_EQ(gpu_telemetry_library(), "/tmp/fake.so");
  ::unsetenv("GRIDEXP_NVML_LIBRARY");
}

TEST(VisibleGpuIndices, OnlyAPlainListOfIndicesNamesGpus) {
  EXPECT_EQ(visible_gpu_indices("0,2"), (std::vector<int>{0, 2}));
  EXPECT_EQ(visible_gpu_indices("3"), (std::vector<int>{3}));
  EXPECT_EQ(visible_gpu_indices(""), std::nullopt);
  EXPECT_EQ(visible_gpu_indices("GPU-8f3c1d2e-aaaa"), std::nullopt);
  EXPECT_EQ(visible_gpu_indices("0,x"), std::nullopt);
  EXPECT_EQ(visible_gpu_indices("0,-1"), std::nullopt);
  EXPECT_EQ(visible_gpu_indices("0,"), std::nullopt);
}

}  // namespace
}  // namespace gridexp
