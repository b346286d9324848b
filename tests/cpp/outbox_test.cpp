// Tests for the worker's outbox: outcomes survive until acknowledged, in order, atomically.
#include "worker/outbox.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

class OutboxTest : public ::testing::Test {
 protected:
  TempDir temp_;
  std::filesystem::path directory_ = temp_.path() / "outbox";
};

FinishedTrial sample(const std::string& id, bool succeeded) {
  FinishedTrial trial;
  trial.trial_id = id;
  trial.lease_token = "token-" + id;
  trial.succeeded = succeeded;
  if (succeeded) {
    trial.results = {{"loss", 0.5}, {"curve", {1, 2}}, {"note", "NaN"}};
    trial.model_path = "/tmp/models/" + id + ".pt";
  } else {
    trial.error = "ValueError: bad";
    trial.traceback = "Traceback (most recent call last):\n...";
  }
  return trial;
}

TEST_F(OutboxTest, KeepsOutcomesUntilRemovedAndAcrossInstances) {
  {
    Outbox outbox(directory_, default_file_system());
    ASSERT_TRUE(outbox.prepare());
    ASSERT_TRUE(outbox.put(sample("00000000000000a1", true)));
    ASSERT_TRUE(outbox.put(sample("00000000000000b2", false)));
  }
  Outbox reopened(directory_, default_file_system());
  Result<std::vector<FinishedTrial>> kept = reopened.pending();
  ASSERT_TRUE(kept) << kept.status().message();
  ASSERT_EQ(kept->size(), 2u);
  const FinishedTrial& done = (*kept)[0].succeeded ? (*kept)[0] : (*kept)[1];
  const FinishedTrial& failed = (*kept)[0].succeeded ? (*kept)[1] : (*kept)[0];
  EXPECT_EQ(done.trial_id, "00000000000000a1");
  EXPECT_EQ(done.lease_token, "token-00000000000000a1");
  EXPECT_EQ(done.results, sample("00000000000000a1", true).results);
  EXPECT_EQ(done.model_path, std::filesystem::path("/tmp/models/00000000000000a1.pt"));
  EXPECT_EQ(failed.error, "ValueError: bad");
  EXPECT_FALSE(failed.model_path);
  ASSERT_TRUE(reopened.remove("00000000000000a1"));
  ASSERT_EQ(reopened.pending()->size(), 1u);
  ASSERT_TRUE(reopened.remove("00000000000000b2"));
  EXPECT_TRUE(reopened.pending()->empty());
  EXPECT_TRUE(reopened.remove("00000000000000b2"));  // removing twice is harmless
}

TEST_F(OutboxTest, KeepsThePeakGpuMemoryAndReadsEntriesWrittenWithoutIt) {
  FinishedTrial measured = sample("00000000000000c3", true);
  measured.peak_gpu_memory_bytes = 6'000'000'000;
  Result<FinishedTrial> read_back = FinishedTrial::from_json(measured.to_json());
  ASSERT_TRUE(read_back) << read_back.status().message();
  EXPECT_EQ(read_back->peak_gpu_memory_bytes, 6'000'000'000);

  nlohmann::json older = sample("00000000000000d4", true).to_json();
  older.erase("peak_gpu_memory_bytes");
  read_back = FinishedTrial::from_json(older);
  ASSERT_TRUE(read_back) << read_back.status().message();
  EXPECT_FALSE(read_back->peak_gpu_memory_bytes.has_value());
}

TEST_F(OutboxTest, PutReplacesAnEarlierOutcomeOfTheSameTrial) {
  Outbox outbox(directory_, default_file_system());
  ASSERT_TRUE(outbox.prepare());
  ASSERT_TRUE(outbox.put(sample("00000000000000a1", false)));
  ASSERT_TRUE(outbox.put(sample("00000000000000a1", true)));
  ASSERT_EQ(outbox.pending()->size(), 1u);
  EXPECT_TRUE(outbox.pending()->front().succeeded);
  for (const auto& entry : std::filesystem::directory_iterator(directory_)) {
    EXPECT_EQ(entry.path().extension(), ".json") << "a temporary file was left behind";
  }
}

TEST_F(OutboxTest, AnUnreadableEntryIsReportedNotSkipped) {
  Outbox outbox(directory_, default_file_system());
  ASSERT_TRUE(outbox.prepare());
  std::ofstream(directory_ / "00000000000000c3.json") << "{truncated";
  Result<std::vector<FinishedTrial>> kept = outbox.pending();
  ASSERT_FALSE(kept);
  EXPECT_NE(kept.status().message().find("00000000000000c3.json"), std::string::npos);
}

TEST_F(OutboxTest, AnEntryNested100000DeepIsReportedNotACrash) {
  Outbox outbox(directory_, default_file_system());
  ASSERT_TRUE(outbox.prepare());
  std::ofstream(directory_ / "00000000000000d4.json")
      << R"({"results": )" << std::string(100'000, '[') << std::string(100'000, ']') << "}";
  Result<std::vector<FinishedTrial>> kept = outbox.pending();
  ASSERT_FALSE(kept);
  EXPECT_NE(kept.status().message().find("levels deep"), std::string::npos)
      << kept.status().message();
}

}  // namespace
}  // namespace gridexp
