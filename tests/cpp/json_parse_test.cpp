// parse_json: the depth-limited JSON parser every request body goes through.
#include <gtest/gtest.h>

#include <string>

#include "common/json_parse.h"

namespace gridexp {
namespace {

using nlohmann::json;

std::string nested_arrays(int depth, const std::string& inside = "") {
  return std::string(static_cast<std::size_t>(depth), '[') + inside +
         std::string(static_cast<std::size_t>(depth), ']');
}

std::string nested_objects(int depth) {
  std::string text;
  for (int i = 0; i < depth; ++i) text += "{\"a\":";
  text += "1";
  for (int i = 0; i < depth; ++i) text += "}";
  return text;
}

// The message of a refused document; fails the test if it was accepted.
std::string refusal(std::string_view text, int max_depth = kMaxJsonDepth) {
  Result<json> parsed = parse_json(text, max_depth);
  if (parsed.is_ok()) {
    ADD_FAILURE() << "accepted " << text.substr(0, 80);
    return "";
  }
  EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
  return parsed.status().message();
}

TEST(ParseJson, BuildsWhatNlohmannBuilds) {
  const std::string text =
      R"({"s": "h\u00e9\ud83d\ude00", "i": -12, "u": 18446744073709551615, "f": 0.5,
          "e": 1e-400, "b": [true, false, null], "o": {"k": {}}, "empty": [], "dup": 1,
          "dup": 2})";
  Result<json> parsed = parse_json(text);
  ASSERT_TRUE(parsed.is_ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, json::parse(text));
  EXPECT_TRUE((*parsed)["i"].is_number_integer());
  EXPECT_TRUE((*parsed)["u"].is_number_unsigned());
  EXPECT_EQ((*parsed)["dup"], 2);
}

TEST(ParseJson, ScalarsAtTheTop) {
  EXPECT_EQ(*parse_json("3"), json(3));
  EXPECT_EQ(*parse_json(" \"x\" "), json("x"));
  EXPECT_EQ(*parse_json("null"), json(nullptr));
}

TEST(ParseJson, NestingUpToTheLimitIsAccepted) {
  Result<json> arrays = parse_json(nested_arrays(kMaxJsonDepth, "7"));
  ASSERT_TRUE(arrays.is_ok()) << arrays.status().message();
  const json* inner = &*arrays;
  for (int i = 0; i < kMaxJsonDepth; ++i) inner = &(*inner)[0];
  EXPECT_EQ(*inner, 7);
  EXPECT_TRUE(parse_json(nested_objects(kMaxJsonDepth)).is_ok());
  EXPECT_TRUE(parse_json(nested_arrays(3), 3).is_ok());
}

TEST(ParseJson, NestingPastTheLimitIsRefused) {
  EXPECT_EQ(refusal(nested_arrays(kMaxJsonDepth + 1)), "JSON nested more than 200 levels deep");
  EXPECT_EQ(refusal(nested_objects(kMaxJsonDepth + 1)), "JSON nested more than 200 levels deep");
  EXPECT_EQ(refusal(nested_arrays(4), 3), "JSON nested more than 3 levels deep");
  // Depth counts open containers, not all of them: wide is fine, deep is not.
  EXPECT_TRUE(parse_json("[[[1]],[[2]],{\"a\":[3]}]", 3).is_ok());
  refusal("[[[1]],[[[2]]]]", 3);
}

TEST(ParseJson, AHundredThousandLevelsAreRefusedWithoutBuildingThem) {
  // Built and dumped, this document overflows the stack (issue 14, item 3).
  EXPECT_EQ(refusal(nested_arrays(100'000)), "JSON nested more than 200 levels deep");
  EXPECT_EQ(refusal("{\"devices\": " + nested_arrays(100'000, "1") + "}"),
            "JSON nested more than 200 levels deep");
  // Unclosed, too.
  EXPECT_EQ(refusal(std::string(100'000, '[')), "JSON nested more than 200 levels deep");
}

TEST(ParseJson, NumberOverflowIsInvalidArgument) {
  EXPECT_EQ(refusal(R"({"password": 1e400})"),
            "malformed JSON: number overflow parsing '1e400' at byte 18");
  EXPECT_NE(refusal("-1e400").find("number overflow"), std::string::npos);
  EXPECT_NE(refusal("1" + std::string(400, '0')).find("number overflow"), std::string::npos);
}

TEST(ParseJson, SyntaxErrorsSayWhere) {
  std::string message = refusal(R"({"a": 1,})");
  EXPECT_EQ(message.rfind("malformed JSON: parse error at line 1, column 9", 0), 0u) << message;
  EXPECT_EQ(message.find("[json.exception"), std::string::npos) << message;
  EXPECT_EQ(refusal(""), "malformed JSON: the input is empty");
  EXPECT_EQ(refusal(" \r\n\t"), "malformed JSON: the input is empty");
  EXPECT_NE(refusal("{} x").find("expected end of input"), std::string::npos);
  EXPECT_NE(refusal("[1, 2").find("parse error"), std::string::npos);
  EXPECT_NE(refusal("{\"a\" 1}").find("parse error"), std::string::npos);
  EXPECT_NE(refusal("nul").find("parse error"), std::string::npos);
  EXPECT_NE(refusal("NaN").find("parse error"), std::string::npos);
}

TEST(ParseJson, InvalidUtf8AndControlCharactersAreRefused) {
  refusal("\"\xff\"");
  refusal("\"\xc3\"");
  refusal(std::string("\"a\0b\"", 5));
  refusal("\"\x01\"");
  refusal(R"("\ud800")");  // a lone surrogate
}

}  // namespace
}  // namespace gridexp
