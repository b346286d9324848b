// Tests for server/terminal_text: what a start-up message may quote from a file unescaped.
#include "server/terminal_text.h"

#include <gtest/gtest.h>

#include <string>

namespace gridexp {
namespace {

TEST(TerminalSafe, KeepsPrintableTextAndUtf8) {
  EXPECT_EQ(terminal_safe("config.yaml:3:7: hyperparameters.lr: fine"),
            "config.yaml:3:7: hyperparameters.lr: fine");
  EXPECT_EQ(terminal_safe("学習率 émoji 😀 \\ \"q\""), "学習率 émoji 😀 \\ \"q\"");
  EXPECT_EQ(terminal_safe(""), "");
}

TEST(TerminalSafe, EscapesC0ControlsAndDelete) {
  EXPECT_EQ(terminal_safe("a\x1b[31mred\x1b]0;title\x07"), "a\\x1b[31mred\\x1b]0;title\\x07");
  EXPECT_EQ(terminal_safe(std::string("nul\0byte", 8)), "nul\\x00byte");
  EXPECT_EQ(terminal_safe("tab\tnew\nreturn\r\x7f"), "tab\\tnew\\nreturn\\r\\x7f");
}

TEST(TerminalSafe, EscapesC1ControlsAndBidirectionalOverrides) {
  EXPECT_EQ(terminal_safe("\xc2\x9b"
                          "31m"),
            "\\u009b31m");  // CSI
  EXPECT_EQ(terminal_safe("\xe2\x80\xae"
                          "txt.exe"),
            "\\u202etxt.exe");
  EXPECT_EQ(terminal_safe("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");
}

TEST(TerminalSafe, EscapesEachByteOfInvalidUtf8) {
  EXPECT_EQ(terminal_safe("bad\xff"), "bad\\xff");
  EXPECT_EQ(terminal_safe("\xc3("), "\\xc3(");                           // truncated sequence
  EXPECT_EQ(terminal_safe("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(terminal_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a UTF-16 surrogate
  EXPECT_EQ(terminal_safe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(terminal_safe("\xe6\x97"), "\\xe6\\x97");                    // cut short at the end
}

TEST(TerminalSafe, IsIdempotent) {
  std::string once = terminal_safe("\x1b[2J\xc2\x9b\xff\n");
  EXPECT_EQ(terminal_safe(once), once);
}

}  // namespace
}  // namespace gridexp
