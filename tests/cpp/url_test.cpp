// Tests for common/url: path segments survive any character, and the unreserved ones stay
// readable.
#include "common/url.h"

#include <gtest/gtest.h>

namespace gridexp {
namespace {

TEST(EncodePathSegment, UnreservedCharactersPass) {
  EXPECT_EQ(encode_path_segment("Sentiment_analysis-1.v2~x"), "Sentiment_analysis-1.v2~x");
}

TEST(EncodePathSegment, EveryUrlSpecialCharacterIsEncoded) {
  EXPECT_EQ(encode_path_segment("a#b?c%d/e f+g&h=i;j"), "a%23b%3Fc%25d%2Fe%20f%2Bg%26h%3Di%3Bj");
  EXPECT_EQ(encode_path_segment(":@!$'()*,[]\"<>\\^`{|}"),
            "%3A%40%21%24%27%28%29%2A%2C%5B%5D%22%3C%3E%5C%5E%60%7B%7C%7D");
}

TEST(EncodePathSegment, NonAsciiIsEncodedByteByByte) {
  EXPECT_EQ(encode_path_segment("é✓"), "%C3%A9%E2%9C%93");
}

TEST(EncodePathSegment, ControlBytesAndNulAreEncoded) {
  EXPECT_EQ(encode_path_segment(std::string_view("\r\n\t\0", 4)), "%0D%0A%09%00");
}

TEST(EncodePathSegment, EmptyStaysEmpty) { EXPECT_EQ(encode_path_segment(""), ""); }

}  // namespace
}  // namespace gridexp
