// detect_devices: NVIDIA GPUs read from a made-up /proc/driver/nvidia/gpus tree.
#include "worker/devices.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.h"

namespace gridexp {
namespace {

void add_gpu(const std::filesystem::path& proc, const std::string& bus, const std::string& model,
             int minor) {
  std::filesystem::path dir = proc / "driver/nvidia/gpus" / bus;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "information") << "Model: \t\t " << model << "\n"
                                     << "IRQ:   \t\t 42\n"
                                     << "GPU UUID: \t GPU-0f3c\n"
                                     << "Bus Location: \t " << bus << "\n"
                                     << "Device Minor: \t " << minor << "\n";
}

TEST(DetectDevices, NoDriverMeansNoDevices) {
  testing::TempDir proc;
  EXPECT_TRUE(detect_devices(proc.path()).empty());
}

TEST(DetectDevices, GpusInDeviceMinorOrderWithTheirModels) {
  testing::TempDir proc;
  add_gpu(proc.path(), "0000:00:06.0", "NVIDIA H100 80GB HBM3", 1);
  add_gpu(proc.path(), "0000:00:05.0", "NVIDIA H100 80GB HBM3", 0);
  std::vector<std::string> devices = detect_devices(proc.path());
  EXPECT_EQ(devices, (std::vector<std::string>{"GPU 0: NVIDIA H100 80GB HBM3",
                                               "GPU 1: NVIDIA H100 80GB HBM3"}));
}

TEST(DetectDevices, AnEntryWithoutAModelIsSkipped) {
  testing::TempDir proc;
  std::filesystem::create_directories(proc.path() / "driver/nvidia/gpus/0000:00:07.0");
  add_gpu(proc.path(), "0000:00:05.0", "Tesla T4", 0);
  EXPECT_EQ(detect_devices(proc.path()), std::vector<std::string>{"GPU 0: Tesla T4"});
}

}  // namespace
}  // namespace gridexp
