#include "server/gpu_board.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

const std::vector<GpuSample> kTwoGpus = {{0, 97, 3000, 8000}, {1, 3, 1000, 8000}};

TEST(GpuBoard, KeepsEachWorkersLatestSamplesWhileTheyAreCurrent) {
  GpuBoard board;
  board.record("w1", kTwoGpus, 1000);
  board.record("w2", {{0, 50, 1, 2}}, 1000);
  board.record("w2", {{0, 60, 1, 2}}, 2000);
  EXPECT_EQ(board.of("w1", 1500, 1000), kTwoGpus);
  EXPECT_EQ(board.of("w2", 2500, 1000), (std::vector<GpuSample>{{0, 60, 1, 2}}));
  EXPECT_TRUE(board.of("w1", 2001, 1000).empty());
  EXPECT_TRUE(board.of("unknown", 1000, 1000).empty());
  std::map<std::string, std::vector<GpuSample>> current = board.current(2500, 1000);
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(current.begin()->first, "w2");
}

TEST(GpuBoard, ForgetsTheOldestWorkerBeyondItsBound) {
  GpuBoard board;
  for (std::size_t i = 0; i <= GpuBoard::kMaxWorkers; ++i) {
    board.record("w" + std::to_string(i), kTwoGpus, static_cast<TimeMs>(i));
  }
  EXPECT_TRUE(board.of("w0", 10, 1'000'000).empty());
  EXPECT_EQ(board.of("w1", 10, 1'000'000), kTwoGpus);
  EXPECT_EQ(board.current(10, 1'000'000).size(), GpuBoard::kMaxWorkers);
}

TEST(GpuMetrics, EveryGpuOfEveryWorkerIsAGaugeWithWorkerAndGpuLabels) {
  EXPECT_EQ(render_gpu_metrics({}), "");
  std::string text = render_gpu_metrics({{"w\"1", kTwoGpus}});
  EXPECT_NE(text.find("# TYPE gridexp_gpu_utilization gauge\n"), std::string::npos);
  EXPECT_NE(text.find("gridexp_gpu_utilization{worker=\"w\\\"1\",gpu=\"0\"} 0.97"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gridexp_gpu_memory_used_bytes{worker=\"w\\\"1\",gpu=\"1\"} 1000\n"),
            std::string::npos);
  EXPECT_NE(text.find("gridexp_gpu_memory_total_bytes{worker=\"w\\\"1\",gpu=\"1\"} 8000\n"),
            std::string::npos);
}

}  // namespace
}  // namespace gridexp
