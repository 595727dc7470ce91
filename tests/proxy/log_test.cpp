#include "proxy/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace arbiter {
namespace {

std::string escaped(std::string_view text) {
  std::string out = "prefix:";
  append_json_escaped(out, text);
  return out;
}

TEST(JsonEscape, PlainTextIsAppendedAsIs) {
  EXPECT_EQ(escaped(""), "prefix:");
  EXPECT_EQ(escaped("/items/1?x=1&y=%20"), "prefix:/items/1?x=1&y=%20");
}

TEST(JsonEscape, QuotesBackslashesControlsAndNonAsciiBytesAreEscaped) {
  EXPECT_EQ(escaped("a\"b\\c"), "prefix:a\\\"b\\\\c");
  EXPECT_EQ(escaped(std::string_view("\0\n\x1f\x7f", 4)), "prefix:\\u0000\\u000a\\u001f\\u007f");
  EXPECT_EQ(escaped("caf\xc3\xa9!"), "prefix:caf\\u00c3\\u00a9!");
  EXPECT_EQ(escaped("\"start and end\""), "prefix:\\\"start and end\\\"");
}

// Whatever bytes a client sends, the escaped text is a valid JSON string of those bytes (each
// byte >= 0x80 becoming the code point of the same number).
TEST(JsonEscape, EveryByteRoundTripsThroughAJsonParser) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all.push_back(static_cast<char>(byte));
  std::string text = "\"";
  append_json_escaped(text, all);
  text.push_back('"');
  std::string parsed = nlohmann::json::parse(text).get<std::string>();
  std::string expected;
  for (int byte = 0; byte < 256; ++byte) {
    if (byte < 0x80) {
      expected.push_back(static_cast<char>(byte));
    } else {  // U+0080..U+00FF in UTF-8
      expected.push_back(static_cast<char>(0xc0 | (byte >> 6)));
      expected.push_back(static_cast<char>(0x80 | (byte & 0x3f)));
    }
  }
  EXPECT_EQ(parsed, expected);
}

}  // namespace
}  // namespace arbiter
