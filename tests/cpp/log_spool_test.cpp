// Tests for worker/log_spool and server/trial_logs: a trial's output reaches the stored log
// whole up to the limit, in order, and a cut is marked with the number of bytes dropped,
// whichever side cut it.
#include "worker/log_spool.h"

#include <gtest/gtest.h>

#include <string>

#include "server/trial_logs.h"
#include "test_support.h"

namespace gridexp {
namespace {

using namespace gridexp::testing;

constexpr char kTrialId[] = "0123456789abcdef";

std::string drain(LogSpool& spool, std::size_t chunk_bytes) {
  std::string all;
  for (std::string chunk; !(chunk = spool.next_chunk(chunk_bytes)).empty();) {
    spool.consume(chunk.size());
    all += chunk;
  }
  return all;
}

TEST(LogSpool, KeepsEveryLineInOrder) {
  TempDir dir;
  LogSpool spool(dir.path(), 1 << 20);
  for (int i = 0; i < 1000; ++i) spool.append("line " + std::to_string(i));
  spool.close();
  std::string expected;
  for (int i = 0; i < 1000; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(drain(spool, 100), expected);
  EXPECT_EQ(spool.dropped_bytes(), 0u);
  EXPECT_FALSE(spool.has_unsent());
}

TEST(LogSpool, ChunksEndAtALineWhenOneFits) {
  TempDir dir;
  LogSpool spool(dir.path(), 1 << 20);
  spool.append("aaaa");
  spool.append("bbbb");
  EXPECT_EQ(spool.next_chunk(7), "aaaa\n");
  spool.consume(5);
  EXPECT_EQ(spool.next_chunk(7), "bbbb\n");
}

TEST(LogSpool, LeavesNoFileBehind) {
  TempDir dir;
  {
    LogSpool spool(dir.path(), 1 << 20);
    spool.append("secret output");
    EXPECT_TRUE(file_names(dir.path()).empty());
  }
  EXPECT_TRUE(file_names(dir.path()).empty());
}

TEST(LogSpool, PastTheLimitCountsAndMarksTheCut) {
  TempDir dir;
  const std::uint64_t limit = kLogCutMarkRoom + 100;
  LogSpool spool(dir.path(), limit);
  for (int i = 0; i < 30; ++i) spool.append("123456789");  // 10 bytes a line
  spool.append("short");  // after a cut nothing is kept, so the log stays a prefix
  spool.close();
  std::string expected;
  for (int i = 0; i < 10; ++i) expected += "123456789\n";
  expected += format_log_cut_mark(limit, 20 * 10 + 6) + "\n";
  EXPECT_EQ(drain(spool, 1 << 20), expected);
  EXPECT_EQ(expected.substr(100), "[gridexp: log cut at 4196 bytes; 206 bytes dropped]\n");
}

TEST(LogSpool, AnUnusableDirectoryDropsAndCounts) {
  LogSpool spool("/nonexistent/gridexp", 1 << 20);
  spool.append("lost");
  spool.close();
  EXPECT_EQ(spool.next_chunk(100), "");
  EXPECT_EQ(spool.dropped_bytes(), 5u);
}

TEST(LogCutMark, ParsesWhatBothSidesWrite) {
  EXPECT_EQ(parse_log_cut_mark(format_log_cut_mark(64ull << 20, 12345)), 12345u);
  EXPECT_EQ(parse_log_cut_mark("\n[gridexp: log cut at 64 MiB; 7 bytes dropped]\n"), 7u);
  EXPECT_EQ(parse_log_cut_mark("[gridexp: log cut at 64 MiB; x bytes dropped]"), std::nullopt);
  EXPECT_EQ(parse_log_cut_mark("hello [gridexp: log cut at 1 MiB; 7 bytes dropped]"), std::nullopt);
}

class TrialLogsTest : public ::testing::Test {
 protected:
  TempDir dir_;
  TrialLogs logs_{dir_.path(), 100, default_file_system()};
  std::string stored() { return read_file(logs_.path_for(kTrialId)); }
};

TEST_F(TrialLogsTest, KeepsWhatFits) {
  ASSERT_TRUE(logs_.append(kTrialId, "hello\n"));
  ASSERT_TRUE(logs_.append(kTrialId, "world\n"));
  EXPECT_EQ(stored(), "hello\nworld\n");
}

TEST_F(TrialLogsTest, MarksTheCutWithTheBytesDropped) {
  ASSERT_TRUE(logs_.append(kTrialId, std::string(90, 'a')));
  ASSERT_TRUE(logs_.append(kTrialId, std::string(30, 'b')));
  EXPECT_EQ(stored(), std::string(90, 'a') + std::string(10, 'b') +
                          "\n[gridexp: log cut at 100 bytes; 20 bytes dropped]\n");
}

TEST_F(TrialLogsTest, LaterChunksAddToTheOneMark) {
  ASSERT_TRUE(logs_.append(kTrialId, std::string(120, 'a')));
  ASSERT_TRUE(logs_.append(kTrialId, std::string(1000, 'b')));
  ASSERT_TRUE(logs_.append(kTrialId, "c\n"));
  EXPECT_EQ(stored(),
            std::string(100, 'a') + "\n[gridexp: log cut at 100 bytes; 1022 bytes dropped]\n");
}

TEST_F(TrialLogsTest, AWorkersMarkAddsItsCount) {
  ASSERT_TRUE(logs_.append(kTrialId, std::string(95, 'a') + "\n"));
  ASSERT_TRUE(
      logs_.append(kTrialId, "bbbbbbbbbb\n[gridexp: log cut at 64 MiB; 5000 bytes dropped]\n"));
  EXPECT_EQ(stored(), std::string(95, 'a') + "\nbbbb" +
                          "\n[gridexp: log cut at 100 bytes; 5007 bytes dropped]\n");
}

TEST_F(TrialLogsTest, AWorkersMarkThatFitsIsStoredAsItCame) {
  ASSERT_TRUE(logs_.append(kTrialId, "x\n[gridexp: log cut at 64 MiB; 5 bytes dropped]\n"));
  EXPECT_EQ(stored(), "x\n[gridexp: log cut at 64 MiB; 5 bytes dropped]\n");
}

// The worker's spool and the server's log together: one attempt that prints past the limit
// is stored up to it, with the worker's count, and nothing the server could keep is lost.
TEST(LogSpoolToTrialLogs, AFloodIsStoredUpToTheLimitWithItsCount) {
  TempDir dir;
  const std::uint64_t limit = 64 * 1024;
  TrialLogs logs(dir.path() / "logs", limit, default_file_system());
  ASSERT_TRUE(logs.prepare());
  LogSpool spool(dir.path(), limit);
  std::uint64_t printed = 0;
  for (int i = 0; i < 10'000; ++i) {
    std::string line = std::to_string(i) + std::string(40, '.');
    printed += line.size() + 1;
    spool.append(line);
  }
  spool.close();
  for (std::string chunk; !(chunk = spool.next_chunk(4096)).empty();) {
    ASSERT_TRUE(logs.append(kTrialId, chunk));
    spool.consume(chunk.size());
  }
  std::string stored = read_file(logs.path_for(kTrialId));
  ASSERT_LE(stored.size(), limit);
  std::size_t mark = stored.rfind("[gridexp:");
  ASSERT_NE(mark, std::string::npos);
  std::optional<std::uint64_t> dropped = parse_log_cut_mark(stored.substr(mark));
  ASSERT_TRUE(dropped);
  EXPECT_EQ(mark + *dropped, printed);
  EXPECT_GE(mark, limit - kLogCutMarkRoom - 64);
  EXPECT_EQ(stored.substr(0, 3), "0..");
}

}  // namespace
}  // namespace gridexp
