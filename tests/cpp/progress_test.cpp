// Tests for worker/progress: a trial's summary on the worker's console stays one bounded line.
#include "worker/progress.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace gridexp {
namespace {

TEST(BoundedText, ShortTextIsUnchanged) { EXPECT_EQ(bounded_text("abc", 3), "abc"); }

TEST(BoundedText, LongTextIsCutWithWhatWasLeftOut) {
  EXPECT_EQ(bounded_text(std::string(10, 'x'), 4), "xxxx… (6 bytes more)");
}

TEST(BoundedText, NeverCutsACharacterInTwo) {
  // "é" is two bytes: a cut after the first would leave half of it.
  EXPECT_EQ(bounded_text("aé" + std::string(5, 'b'), 2), "a… (7 bytes more)");
}

TEST(Progress, AHugeResultIsOneShortLine) {
  std::FILE* console = std::tmpfile();
  ASSERT_NE(console, nullptr);
  Progress progress(console);
  progress.trial_finished("0123456789abcdef", true, std::string(10'000'000, '7'));
  long size = std::ftell(console);
  std::fclose(console);
  EXPECT_LT(size, static_cast<long>(kMaxSummaryBytes + 200));
}

TEST(Progress, TheStatusLineShowsEachSlotThreadsTrialAndItsMetrics) {
  std::FILE* console = std::tmpfile();
  ASSERT_NE(console, nullptr);
  Progress progress(console);
  progress.set_totals(3, 10);
  progress.idle("waiting");
  EXPECT_EQ(progress.status_line(), "[3/10 done] waiting");
  progress.trial_started("t1", 1, nlohmann::json::object());
  progress.metrics({{"loss", 0.5}}, 2);
  EXPECT_EQ(progress.status_line(), "[3/10 done] trial t1  step 2: loss=0.5");
  std::thread([&progress] {
    progress.trial_started("t2", 1, nlohmann::json::object());
    progress.metrics({{"acc", 0.25}}, nullptr);
  }).join();
  EXPECT_EQ(progress.status_line(), "[3/10 done] 2 trials: t1 (step 2: loss=0.5) t2 (acc=0.25)");
  progress.trial_started("t3", 1, nlohmann::json::object());
  EXPECT_EQ(progress.status_line(), "[3/10 done] 2 trials: t3 t2 (acc=0.25)")
      << "a thread's next trial replaces its last";
  progress.trial_finished("t3", true, "{}");
  EXPECT_EQ(progress.status_line(), "[4/10 done] trial t2  acc=0.25");
  std::fclose(console);
}

}  // namespace
}  // namespace gridexp
