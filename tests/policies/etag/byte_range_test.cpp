#include "policies/etag/byte_range.h"

#include <gtest/gtest.h>

namespace arbiter {
namespace {

TEST(ByteRange, SelectsOneRangeClippedToTheRepresentation) {
  ByteRange range;
  ASSERT_EQ(select_byte_range("bytes=0-4", 10, range), RangeSelection::Satisfiable);
  EXPECT_EQ(range.first, 0u);
  EXPECT_EQ(range.last, 4u);
  ASSERT_EQ(select_byte_range("bytes=5-", 10, range), RangeSelection::Satisfiable);
  EXPECT_EQ(range.last, 9u);
  ASSERT_EQ(select_byte_range("bytes=8-100", 10, range), RangeSelection::Satisfiable);
  EXPECT_EQ(range.last, 9u);
  ASSERT_EQ(select_byte_range("bytes=-3", 10, range), RangeSelection::Satisfiable);
  EXPECT_EQ(range.first, 7u);
  ASSERT_EQ(select_byte_range("bytes=-30", 10, range), RangeSelection::Satisfiable);
  EXPECT_EQ(range.first, 0u);
  EXPECT_EQ(content_range(ByteRange{7, 9}, 10), "bytes 7-9/10");
  // The unit is case-insensitive (RFC 9110 section 14.1); surrounding whitespace is not part of it.
  for (const char* spelled : {"BYTES=1-2", " Bytes=1-2\t", "bytes= 1-2 "}) {
    ASSERT_EQ(select_byte_range(spelled, 10, range), RangeSelection::Satisfiable) << spelled;
    EXPECT_EQ(range.first, 1u) << spelled;
    EXPECT_EQ(range.last, 2u) << spelled;
  }
}

TEST(ByteRange, IgnoresWhatItDoesNotServeAndRefusesWhatIsPastTheEnd) {
  ByteRange range;
  for (const char* ignored : {"items=0-4", "byte=0-4", "bytes", "bytes=0-1,4-5", "bytes=4-1", "bytes=x-", "bytes=", "bytes=-"}) {
    EXPECT_EQ(select_byte_range(ignored, 10, range), RangeSelection::Ignore) << ignored;
  }
  EXPECT_EQ(select_byte_range("bytes=10-", 10, range), RangeSelection::Unsatisfiable);
  EXPECT_EQ(select_byte_range("bytes=-0", 10, range), RangeSelection::Unsatisfiable);
  EXPECT_EQ(select_byte_range("bytes=0-", 0, range), RangeSelection::Unsatisfiable);
}

}  // namespace
}  // namespace arbiter
