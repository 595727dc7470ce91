#include "policies/rate_limit/token_bucket.h"
#include "tests/policies/rate_limit/bucket_test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace arbiter {
namespace {

using namespace std::chrono_literals;

using testing::kMillisecond;
using testing::kSecond;
using testing::kStart;
using testing::shape_of;

// ---- The shape ----

TEST(BucketShapeTest, UnitsAreReducedByTheCommonDivisor) {
  BucketShape shape = shape_of(20, 1s, 40);
  EXPECT_EQ(shape.count(), 20u);
  EXPECT_EQ(shape.per(), 1s);
  EXPECT_EQ(shape.burst(), 40u);
  EXPECT_EQ(shape.units_per_token(), 50'000'000u);  // 1e9 / gcd(20, 1e9)
  EXPECT_EQ(shape.units_per_ns(), 1u);
  EXPECT_EQ(shape.capacity_units(), 2'000'000'000u);
  EXPECT_EQ(shape.ns_to_fill(), 2 * kSecond);

  BucketShape odd = shape_of(7, 1h, 3);
  EXPECT_EQ(odd.units_per_token(), 3600 * kSecond);  // gcd(7, 3.6e12) = 1
  EXPECT_EQ(odd.units_per_ns(), 7u);
  // 3 tokens at 7 an hour: 3/7 h, rounded up to the nanosecond.
  EXPECT_EQ(odd.ns_to_fill(), (3 * 3600 * kSecond + 6) / 7);

  BucketShape fast = shape_of(3'000'000'000, 1s, 1);  // more than one request a nanosecond
  EXPECT_EQ(fast.units_per_token(), 1u);
  EXPECT_EQ(fast.units_per_ns(), 3u);
  EXPECT_EQ(fast.ns_to_fill(), 1u);
}

TEST(BucketShapeTest, RefusesWhatItCannotHold) {
  EXPECT_FALSE(BucketShape::make(0, 1s, 1).has_value());
  EXPECT_FALSE(BucketShape::make(1, 0s, 1).has_value());
  EXPECT_FALSE(BucketShape::make(1, -1s, 1).has_value());
  EXPECT_FALSE(BucketShape::make(1, 1s, 0).has_value());
  // 7/h: a token is 3.6e12 units, and burst + 1 tokens less a unit must fit in 2^64 - 1.
  EXPECT_EQ(BucketShape::max_burst(7, 1h), 5'124'094u);
  EXPECT_TRUE(BucketShape::make(7, 1h, 5'124'094).has_value());
  EXPECT_FALSE(BucketShape::make(7, 1h, 5'124'095).has_value());
  BucketShape largest = *BucketShape::make(7, 1h, 5'124'094);
  EXPECT_GE(largest.ceiling_units(), largest.capacity_units());  // no wrap-around
  // A rate whose count divides the period has smaller tokens and room for more.
  EXPECT_EQ(BucketShape::max_burst(1000, 1h), 5'124'095'575u);
  EXPECT_EQ(BucketShape::max_burst(3'000'000'000, 1s), std::numeric_limits<std::uint64_t>::max());
  EXPECT_GE(BucketShape::max_burst(1, 1h), 5'000'000u);
  EXPECT_EQ(BucketShape::max_burst(0, 1s), 0u);
}

TEST(BucketShapeTest, MaxKeysTravelsWithTheShape) {
  EXPECT_EQ(BucketShape::make(1, 1s, 1)->max_keys(), BucketShape::kDefaultMaxKeys);
  EXPECT_EQ(BucketShape::make(1, 1s, 1, 7)->max_keys(), 7u);
  EXPECT_EQ(BucketShape::make(1, 1s, 1, 0)->max_keys(), 1u);
  EXPECT_NE(*BucketShape::make(1, 1s, 1, 7), *BucketShape::make(1, 1s, 1, 8));
  EXPECT_EQ(*BucketShape::make(2, 1s, 4), *BucketShape::make(2, 1s, 4));
}

// ---- Taking ----

TEST(TokenBucketTest, ANewBucketHoldsTheBurst) {
  BucketShape shape = shape_of(20, 1s, 40);
  BucketState bucket = full_bucket(shape, kStart);
  for (std::uint64_t i = 1; i <= 40; ++i) {
    TakeResult taken = take_token(bucket, shape, kStart);
    ASSERT_TRUE(taken.admitted) << i;
    EXPECT_EQ(taken.status.remaining, 40 - i);
    EXPECT_EQ(taken.status.ns_until_next, i == 40 ? 50 * kMillisecond : 0);
    EXPECT_EQ(taken.status.ns_until_full, i * 50 * kMillisecond);
  }
  TakeResult refused = take_token(bucket, shape, kStart);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.status.remaining, 0u);
  EXPECT_EQ(refused.status.ns_until_next, 50 * kMillisecond);
  EXPECT_EQ(refused.status.ns_until_full, 2 * kSecond);
}

TEST(TokenBucketTest, RefillIsExactToTheNanosecond) {
  BucketShape shape = shape_of(3, 1s, 1);  // a token every 333,333,333.3 ns
  BucketState bucket = full_bucket(shape, kStart);
  ASSERT_TRUE(take_token(bucket, shape, kStart).admitted);
  TakeResult early = take_token(bucket, shape, kStart + 333'333'333);
  EXPECT_FALSE(early.admitted);
  EXPECT_EQ(early.status.ns_until_next, 1u);  // 1 unit short of 1e9, at 3 units a nanosecond
  EXPECT_TRUE(take_token(bucket, shape, kStart + 333'333'334).admitted);
  // The third of a unit of refill left over is not lost: three tokens in exactly one second.
  EXPECT_TRUE(take_token(bucket, shape, kStart + 666'666'667).admitted);
  EXPECT_TRUE(take_token(bucket, shape, kStart + kSecond).admitted);
  EXPECT_FALSE(take_token(bucket, shape, kStart + kSecond).admitted);
}

TEST(TokenBucketTest, RefillStopsAtTheBurst) {
  BucketShape shape = shape_of(20, 1s, 40);
  BucketState bucket = full_bucket(shape, kStart);
  for (int i = 0; i < 40; ++i) take_token(bucket, shape, kStart);
  // Ten seconds refill 200 tokens' worth; the bucket keeps 40.
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(take_token(bucket, shape, kStart + 10 * kSecond).admitted) << i;
  EXPECT_FALSE(take_token(bucket, shape, kStart + 10 * kSecond).admitted);
}

TEST(TokenBucketTest, ALongIdleNeitherOverflowsNorOverfills) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  // The largest tokens and bucket there are, and the fastest refill, idle for centuries.
  std::vector<BucketShape> shapes = {shape_of(7, 1h, BucketShape::max_burst(7, 1h)),
                                     shape_of(1'000'000'000, 1s, BucketShape::max_burst(1'000'000'000, 1s)),
                                     shape_of(3'000'000'000, 1s, 5), shape_of(1, 1s, 1)};
  for (const BucketShape& shape : shapes) {
    BucketState bucket = full_bucket(shape, 0);
    bucket.units = 0;
    TakeResult taken = take_token(bucket, shape, kMax);
    EXPECT_TRUE(taken.admitted);
    EXPECT_EQ(taken.status.remaining, shape.burst() - 1);
    // Refilled to the ceiling (burst tokens and the fraction of one), then one token taken.
    EXPECT_EQ(bucket.units, shape.ceiling_units() - shape.units_per_token());
    EXPECT_EQ(bucket.updated_ns, kMax);
  }
}

TEST(TokenBucketTest, AClockReadingFromThePastAddsNothing) {
  BucketShape shape = shape_of(1, 1s, 1);
  BucketState bucket = full_bucket(shape, kStart);
  ASSERT_TRUE(take_token(bucket, shape, kStart).admitted);
  ASSERT_TRUE(take_token(bucket, shape, kStart + kSecond).admitted);
  // Another thread's older reading arrives late: no refill, and the update time stays.
  EXPECT_FALSE(take_token(bucket, shape, kStart + kSecond / 2).admitted);
  EXPECT_EQ(bucket.updated_ns, kStart + kSecond);
  EXPECT_FALSE(take_token(bucket, shape, kStart + 2 * kSecond - 1).admitted);
  EXPECT_TRUE(take_token(bucket, shape, kStart + 2 * kSecond).admitted);
}

TEST(TokenBucketTest, RefundGivesOneBackAndNeverOverfills) {
  BucketShape shape = shape_of(1, 1min, 3);
  BucketState bucket = full_bucket(shape, kStart);
  take_token(bucket, shape, kStart);
  take_token(bucket, shape, kStart);
  BucketStatus status = refund_token(bucket, shape, kStart);
  EXPECT_EQ(status.remaining, 2u);
  EXPECT_EQ(status.ns_until_full, 60 * kSecond);
  status = refund_token(bucket, shape, kStart);
  EXPECT_EQ(status.remaining, 3u);
  EXPECT_EQ(status.ns_until_full, 0u);
  status = refund_token(bucket, shape, kStart);  // full already: up to the ceiling, no further
  EXPECT_EQ(status.remaining, 3u);
  EXPECT_EQ(bucket.units, shape.ceiling_units());
  status = refund_token(bucket, shape, kStart + 3600 * kSecond);
  EXPECT_EQ(status.remaining, 3u);
  EXPECT_EQ(bucket.units, shape.ceiling_units());
}

TEST(TokenBucketTest, IsFullLooksAtTheRefillSinceTheLastUpdate) {
  BucketShape shape = shape_of(10, 1s, 2);
  BucketState bucket = full_bucket(shape, kStart);
  EXPECT_TRUE(is_full(bucket, shape, kStart));
  take_token(bucket, shape, kStart);
  EXPECT_FALSE(is_full(bucket, shape, kStart));
  EXPECT_FALSE(is_full(bucket, shape, kStart + 100 * kMillisecond - 1));
  EXPECT_TRUE(is_full(bucket, shape, kStart + 100 * kMillisecond));
  EXPECT_EQ(bucket.updated_ns, kStart);  // looking changes nothing
}

TEST(TokenBucketTest, RetryAfterIsWholeSecondsRoundedUpAndAtLeastOne) {
  EXPECT_EQ(seconds_rounded_up(0), 0u);
  EXPECT_EQ(seconds_rounded_up(1), 1u);
  EXPECT_EQ(seconds_rounded_up(kSecond), 1u);
  EXPECT_EQ(seconds_rounded_up(kSecond + 1), 2u);
  EXPECT_EQ(retry_after_seconds({0, 0, 0}), 1u);
  EXPECT_EQ(retry_after_seconds({0, 1, 0}), 1u);
  EXPECT_EQ(retry_after_seconds({0, 59 * kSecond + 1, 0}), 60u);

  BucketShape shape = shape_of(1, 1min, 1);
  BucketState bucket = full_bucket(shape, kStart);
  take_token(bucket, shape, kStart);
  EXPECT_EQ(retry_after_seconds(take_token(bucket, shape, kStart).status), 60u);
  EXPECT_EQ(retry_after_seconds(take_token(bucket, shape, kStart + 30'200 * kMillisecond).status), 30u);
  EXPECT_EQ(retry_after_seconds(take_token(bucket, shape, kStart + 59'500 * kMillisecond).status), 1u);
}

TEST(TokenBucketTest, MonotonicNanoseconds) {
  EXPECT_EQ(monotonic_ns(MonotonicTime{} + 1500ms), 1'500'000'000u);
  EXPECT_EQ(monotonic_ns(MonotonicTime{} - 1s), 0u);
}

// ---- A new shape for a bucket (a reload) ----

__extension__ typedef unsigned __int128 Wide;  // as in token_bucket.cpp

// A bucket of this shape that has `tokens` left at kStart (taken from a full one).
BucketState spent_to(const BucketShape& shape, std::uint64_t tokens) {
  BucketState bucket = full_bucket(shape, kStart);
  for (std::uint64_t i = tokens; i < shape.burst(); ++i) take_token(bucket, shape, kStart);
  return bucket;
}

// Whole tokens a bucket holds (what a take would report before taking).
std::uint64_t tokens_in(const BucketState& bucket, const BucketShape& shape) {
  return bucket.units / shape.units_per_token();
}

TEST(ReshapeBucketTest, RateUpKeepsTheLevelAndRefillsFaster) {
  BucketShape old_shape = shape_of(1, 1s, 10);
  BucketShape new_shape = shape_of(2, 1s, 10);
  BucketState bucket = spent_to(old_shape, 3);
  // A quarter of a second under the old rate: 3.25 tokens, carried over as 3.25.
  BucketState reshaped = reshape_bucket(bucket, old_shape, new_shape, kStart + 250 * kMillisecond);
  EXPECT_EQ(reshaped.updated_ns, kStart + 250 * kMillisecond);
  EXPECT_EQ(reshaped.units, 3 * new_shape.units_per_token() + new_shape.units_per_token() / 4);
  // 0.75 more at 2/s is 375 ms.
  TakeResult taken = take_token(reshaped, new_shape, kStart + 625 * kMillisecond - 1);
  EXPECT_TRUE(taken.admitted);
  EXPECT_EQ(taken.status.remaining, 2u);
  EXPECT_TRUE(take_token(reshaped, new_shape, kStart + 625 * kMillisecond).admitted);
  EXPECT_EQ(tokens_in(reshaped, new_shape), 2u);
}

TEST(ReshapeBucketTest, RateDownKeepsTheLevelAndRefillsSlower) {
  BucketShape old_shape = shape_of(2, 1s, 10);
  BucketShape new_shape = shape_of(1, 1s, 10);
  BucketState reshaped = reshape_bucket(spent_to(old_shape, 3), old_shape, new_shape, kStart);
  EXPECT_EQ(reshaped.units, 3 * new_shape.units_per_token());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(take_token(reshaped, new_shape, kStart).admitted) << i;
  TakeResult refused = take_token(reshaped, new_shape, kStart);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.status.ns_until_next, kSecond);  // the new rate's token, not the old 500 ms
  EXPECT_EQ(refused.status.ns_until_full, 10 * kSecond);
}

TEST(ReshapeBucketTest, BurstUpDoesNotRefill) {
  BucketShape old_shape = shape_of(1, 1s, 5);
  BucketShape new_shape = shape_of(1, 1s, 20);
  BucketState reshaped = reshape_bucket(spent_to(old_shape, 2), old_shape, new_shape, kStart);
  EXPECT_EQ(tokens_in(reshaped, new_shape), 2u);
  EXPECT_EQ(take_token(reshaped, new_shape, kStart).status.ns_until_full, 19 * kSecond);
  // A full bucket stays at its old burst, not the new one: the rest comes at the rate.
  BucketState full = reshape_bucket(full_bucket(old_shape, kStart), old_shape, new_shape, kStart);
  EXPECT_EQ(tokens_in(full, new_shape), 5u);
}

TEST(ReshapeBucketTest, BurstDownClampsToTheNewBurst) {
  BucketShape old_shape = shape_of(1, 1s, 20);
  BucketShape new_shape = shape_of(1, 1s, 5);
  BucketState clamped = reshape_bucket(spent_to(old_shape, 15), old_shape, new_shape, kStart);
  EXPECT_EQ(clamped.units, new_shape.capacity_units());
  EXPECT_TRUE(is_full(clamped, new_shape, kStart));
  BucketState under = reshape_bucket(spent_to(old_shape, 3), old_shape, new_shape, kStart);
  EXPECT_EQ(under.units, 3 * new_shape.units_per_token());
  // A bucket refilled beyond its burst (the fraction of the next token) is clamped to the burst.
  BucketState overfull = full_bucket(old_shape, kStart);
  refund_token(overfull, old_shape, kStart);
  ASSERT_EQ(overfull.units, old_shape.ceiling_units());
  EXPECT_EQ(reshape_bucket(overfull, old_shape, new_shape, kStart).units, new_shape.capacity_units());
  EXPECT_EQ(reshape_bucket(overfull, old_shape, old_shape, kStart).units, old_shape.capacity_units());
}

TEST(ReshapeBucketTest, PeriodChangeFromSecondsToMinutes) {
  BucketShape per_second = shape_of(1, 1s, 10);
  BucketShape per_minute = shape_of(1, 1min, 10);
  // 2 tokens, and half a second of refill: 2.5 tokens, in units 60 times larger.
  BucketState reshaped =
      reshape_bucket(spent_to(per_second, 2), per_second, per_minute, kStart + 500 * kMillisecond);
  EXPECT_EQ(reshaped.units, 5 * per_minute.units_per_token() / 2);
  EXPECT_TRUE(take_token(reshaped, per_minute, kStart + 500 * kMillisecond).admitted);
  TakeResult last = take_token(reshaped, per_minute, kStart + 500 * kMillisecond);
  EXPECT_TRUE(last.admitted);
  EXPECT_EQ(last.status.remaining, 0u);
  EXPECT_EQ(last.status.ns_until_next, 30 * kSecond);  // the other half of a token, at 1/min
  // The same rate written another way (10/s as 600/m) changes nothing.
  BucketShape ten_per_second = shape_of(10, 1s, 20);
  BucketShape six_hundred_per_minute = shape_of(600, 1min, 20);
  BucketState bucket = spent_to(ten_per_second, 7);
  BucketState same = reshape_bucket(bucket, ten_per_second, six_hundred_per_minute, kStart);
  EXPECT_EQ(same.units, bucket.units);
}

TEST(ReshapeBucketTest, ABucketAtZeroTokensStaysAtZero) {
  // A reload is never a way around a limit: whatever the new shape, nothing is given back.
  BucketShape old_shape = shape_of(1, 1min, 5);
  std::vector<BucketShape> new_shapes = {shape_of(1, 1min, 50),  shape_of(100, 1s, 5), shape_of(1, 1h, 5),
                                         shape_of(1, 1min, 1),   shape_of(3'000'000'000, 1s, 1000),
                                         shape_of(7, 1h, BucketShape::max_burst(7, 1h)),
                                         *BucketShape::make(1, 1min, 5, 3)};
  for (const BucketShape& new_shape : new_shapes) {
    BucketState reshaped = reshape_bucket(spent_to(old_shape, 0), old_shape, new_shape, kStart);
    EXPECT_EQ(reshaped.units, 0u) << new_shape.count() << "/" << new_shape.per().count() << "s";
    EXPECT_FALSE(take_token(reshaped, new_shape, kStart).admitted);
  }
}

TEST(ReshapeBucketTest, MaxKeysAloneChangesNothing) {
  BucketShape old_shape = *BucketShape::make(3, 1s, 10, 100);
  BucketShape new_shape = *BucketShape::make(3, 1s, 10, 5);
  BucketState bucket = spent_to(old_shape, 4);
  BucketState reshaped = reshape_bucket(bucket, old_shape, new_shape, kStart + 123);
  BucketState refilled = bucket;
  take_token(refilled, old_shape, kStart + 123);  // refills, then takes one
  EXPECT_EQ(reshaped.units, refilled.units + old_shape.units_per_token());
}

TEST(ReshapeBucketTest, AnEarlierClockReadingAddsNothing) {
  BucketShape old_shape = shape_of(1, 1s, 10);
  BucketShape new_shape = shape_of(1, 1min, 10);
  BucketState bucket = spent_to(old_shape, 2);
  bucket.updated_ns = kStart + kSecond;
  BucketState reshaped = reshape_bucket(bucket, old_shape, new_shape, kStart);
  EXPECT_EQ(reshaped.updated_ns, kStart + kSecond);  // no interval counted twice
  EXPECT_EQ(reshaped.units, 2 * new_shape.units_per_token());
}

TEST(ReshapeBucketTest, FractionsOfATokenArePreservedWithinRounding) {
  // Every level, at every pair of rates, comes out the same fraction of a token, never more,
  // and less by under one unit of the new shape; unless the new burst clamps it.
  std::mt19937_64 random(7);
  std::vector<BucketShape> shapes = {shape_of(3, 1s, 7),   shape_of(4, 1s, 7),        shape_of(7, 1min, 9),
                                     shape_of(1, 1h, 2),   shape_of(1000, 1h, 20000), shape_of(3'000'000'000, 1s, 3),
                                     shape_of(20, 1s, 40), shape_of(7, 1h, BucketShape::max_burst(7, 1h))};
  for (const BucketShape& from : shapes) {
    for (const BucketShape& to : shapes) {
      for (int i = 0; i < 200; ++i) {
        BucketState bucket{random() % from.ceiling_units(), kStart};
        BucketState reshaped = reshape_bucket(bucket, from, to, kStart);
        ASSERT_EQ(tokens_in(reshaped, to), std::min(tokens_in(bucket, from), to.burst()));
        // Both levels in units of 1 / (P_old × P_new) of a token.
        Wide before = Wide{bucket.units} * to.units_per_token();
        Wide after = Wide{reshaped.units} * from.units_per_token();
        ASSERT_LE(after, before);
        if (reshaped.units == to.capacity_units()) continue;  // clamped to the new burst
        ASSERT_LT(before - after, Wide{from.units_per_token()});  // less than one unit of the new shape
      }
    }
  }
}

// ---- The guarantees ----

struct RateCase {
  std::uint64_t count;
  std::chrono::seconds per;
};
const std::vector<RateCase> kRates = {{20, 1s}, {3, 1s}, {1, 1s}, {7, 1min}, {100, 1min}, {1000, 1h}, {7, 1h}};

TEST(TokenBucketGuaranteeTest, AClientAtExactlyTheRateIsNeverRefused) {
  for (const RateCase& rate : kRates) {
    for (std::uint64_t burst : {std::uint64_t{1}, std::uint64_t{2}, rate.count}) {
      BucketShape shape = shape_of(rate.count, rate.per, burst);
      std::uint64_t period = static_cast<std::uint64_t>(rate.per.count()) * kSecond;
      BucketState bucket = full_bucket(shape, kStart);
      // Request k at the first nanosecond at or after k periods/count: exactly the rate.
      for (std::uint64_t k = 0; k < 5000; ++k) {
        std::uint64_t at = kStart + static_cast<std::uint64_t>((static_cast<unsigned __int128>(k) * period +
                                                                rate.count - 1) / rate.count);
        ASSERT_TRUE(take_token(bucket, shape, at).admitted)
            << rate.count << "/" << rate.per.count() << "s burst " << burst << ": request " << k;
      }
    }
  }
}

TEST(TokenBucketGuaranteeTest, AClientUnderTheRateWithJitterIsNeverRefused) {
  std::mt19937_64 random(20240611);
  BucketShape shape = shape_of(10, 1s, 3);
  BucketState bucket = full_bucket(shape, kStart);
  // Gaps average the interval but vary; any stretch of them stays within the burst's slack.
  std::uint64_t ideal = kStart;
  for (int k = 0; k < 10000; ++k) {
    ideal += 100 * kMillisecond;
    std::uint64_t at = ideal + random() % (200 * kMillisecond);  // up to two intervals late, never early
    ASSERT_TRUE(take_token(bucket, shape, at).admitted) << k;
  }
}

// Over any interval [a, b], a bucket admits at most burst + count * (b - a) / per, + 1 for the
// fraction of a token a bucket keeps above its burst.
TEST(TokenBucketGuaranteeTest, AdmittedCountNeverExceedsBurstPlusRateTimesInterval) {
  std::mt19937_64 random(7);
  for (int round = 0; round < 40; ++round) {
    const RateCase& rate = kRates[random() % kRates.size()];
    std::uint64_t burst = 1 + random() % 50;
    BucketShape shape = shape_of(rate.count, rate.per, burst);
    std::uint64_t period = static_cast<std::uint64_t>(rate.per.count()) * kSecond;
    std::uint64_t interval = period / rate.count;

    // Bursty arrivals: clumps at one instant, gaps from none to several intervals.
    BucketState bucket = full_bucket(shape, kStart);
    std::vector<std::uint64_t> admitted;
    std::uint64_t now = kStart;
    for (int request = 0; request < 4000; ++request) {
      switch (random() % 4) {
        case 0: break;  // same instant
        case 1: now += random() % (interval / 4 + 1); break;
        case 2: now += random() % (interval + 1); break;
        default: now += random() % (5 * interval + 1); break;
      }
      if (take_token(bucket, shape, now).admitted) admitted.push_back(now);
    }
    ASSERT_GT(admitted.size(), burst);

    for (int check = 0; check < 2000; ++check) {
      std::uint64_t a = admitted[random() % admitted.size()];
      std::uint64_t b = admitted[random() % admitted.size()];
      if (a > b) std::swap(a, b);
      auto count = static_cast<std::uint64_t>(std::upper_bound(admitted.begin(), admitted.end(), b) -
                                              std::lower_bound(admitted.begin(), admitted.end(), a));
      auto allowed =
          burst + static_cast<std::uint64_t>(static_cast<unsigned __int128>(b - a) * rate.count / period) + 1;
      ASSERT_LE(count, allowed) << rate.count << "/" << rate.per.count() << "s burst " << burst << " over ["
                                << a - kStart << ", " << b - kStart << "] ns";
    }
  }
}

}  // namespace
}  // namespace arbiter
