// Tests for worker/progress: a trial's summary on the worker's console stays one bounded line.
#include "worker/progress.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace gridexp
