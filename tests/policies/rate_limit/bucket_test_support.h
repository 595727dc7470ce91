#pragma once
// What the token-bucket and bucket-store tests share: the fake clock's units and a shape maker.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

#include "policies/rate_limit/token_bucket.h"

namespace arbiter::testing {

inline constexpr std::uint64_t kSecond = kNanosPerSecond;
inline constexpr std::uint64_t kMillisecond = kSecond / 1000;
// Any moment on the fake clock; the arithmetic only ever looks at differences.
inline constexpr std::uint64_t kStart = 1000 * kSecond;

// count per `per` with `burst`, for at most max_keys keys; a failure (and 1/s, burst 1) when the
// shape is refused.
inline BucketShape shape_of(std::uint64_t count, std::chrono::seconds per, std::uint64_t burst,
                            std::size_t max_keys = BucketShape::kDefaultMaxKeys) {
  auto shape = BucketShape::make(count, per, burst, max_keys);
  EXPECT_TRUE(shape.has_value()) << count << "/" << per.count() << "s burst " << burst;
  return shape.value_or(*BucketShape::make(1, std::chrono::seconds(1), 1, max_keys));
}

}  // namespace arbiter::testing
