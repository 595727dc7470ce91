#include "policies/rate_limit/token_bucket.h"

#include <algorithm>
#include <limits>
#include <numeric>

namespace arbiter {

namespace {

__extension__ typedef unsigned __int128 Wide;  // GCC and Clang; -Wpedantic knows no 128-bit type

constexpr std::uint64_t kMaxUnits = std::numeric_limits<std::uint64_t>::max();

std::uint64_t divide_rounding_up(std::uint64_t numerator, std::uint64_t denominator) noexcept {
  return numerator / denominator + (numerator % denominator != 0 ? 1 : 0);
}

// The period in nanoseconds, or 0 when it is not positive or does not fit.
std::uint64_t period_ns(std::chrono::seconds per) noexcept {
  if (per.count() <= 0) return 0;
  auto seconds = static_cast<std::uint64_t>(per.count());
  if (seconds > kMaxUnits / kNanosPerSecond) return 0;
  return seconds * kNanosPerSecond;
}

// Brings the bucket up to now_ns. The elapsed time is clamped to what an empty bucket needs to
// fill before it is multiplied, so that however long the bucket sat idle the product stays
// small (and 128 bits hold it regardless).
void refill(BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept {
  bucket.units = std::min(bucket.units, shape.ceiling_units());  // a state made for another shape
  if (now_ns <= bucket.updated_ns) return;
  std::uint64_t elapsed = std::min(now_ns - bucket.updated_ns, shape.ns_to_ceiling());
  Wide level = Wide{bucket.units} + Wide{elapsed} * shape.units_per_ns();
  bucket.units = static_cast<std::uint64_t>(std::min<Wide>(level, shape.ceiling_units()));
  bucket.updated_ns = now_ns;
}

BucketStatus status_of(const BucketState& bucket, const BucketShape& shape) noexcept {
  BucketStatus status;
  status.remaining = bucket.units / shape.units_per_token();
  if (status.remaining == 0) {
    status.ns_until_next = divide_rounding_up(shape.units_per_token() - bucket.units, shape.units_per_ns());
  }
  if (bucket.units < shape.capacity_units()) {
    status.ns_until_full = divide_rounding_up(shape.capacity_units() - bucket.units, shape.units_per_ns());
  }
  return status;
}

}  // namespace

std::uint64_t monotonic_ns(MonotonicTime time) noexcept {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  return ns <= 0 ? 0 : static_cast<std::uint64_t>(ns);
}

std::uint64_t seconds_rounded_up(std::uint64_t ns) noexcept { return divide_rounding_up(ns, kNanosPerSecond); }

std::uint64_t BucketShape::max_burst(std::uint64_t count, std::chrono::seconds per) noexcept {
  std::uint64_t per_ns = period_ns(per);
  if (count == 0 || per_ns == 0) return 0;
  // The ceiling, (burst + 1) tokens less one unit, must fit.
  std::uint64_t units_per_token = per_ns / std::gcd(count, per_ns);
  return (kMaxUnits - (units_per_token - 1)) / units_per_token;
}

std::optional<BucketShape> BucketShape::make(std::uint64_t count, std::chrono::seconds per, std::uint64_t burst,
                                             std::size_t max_keys) {
  if (burst == 0 || burst > max_burst(count, per)) return std::nullopt;  // also count or per 0
  std::uint64_t per_ns = period_ns(per);
  std::uint64_t common = std::gcd(count, per_ns);
  BucketShape shape;
  shape.count_ = count;
  shape.per_ = per;
  shape.burst_ = burst;
  shape.max_keys_ = std::max<std::size_t>(1, max_keys);
  shape.units_per_token_ = per_ns / common;
  shape.units_per_ns_ = count / common;
  shape.capacity_units_ = burst * shape.units_per_token_;  // fits: burst <= max_burst
  shape.ns_to_fill_ = divide_rounding_up(shape.capacity_units_, shape.units_per_ns_);
  shape.ns_to_ceiling_ = divide_rounding_up(shape.ceiling_units(), shape.units_per_ns_);
  return shape;
}

BucketState full_bucket(const BucketShape& shape, std::uint64_t now_ns) noexcept {
  return BucketState{shape.capacity_units(), now_ns};
}

TakeResult take_token(BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept {
  refill(bucket, shape, now_ns);
  TakeResult result;
  if (bucket.units >= shape.units_per_token()) {
    bucket.units -= shape.units_per_token();
    result.admitted = true;
  }
  result.status = status_of(bucket, shape);
  return result;
}

BucketStatus refund_token(BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept {
  refill(bucket, shape, now_ns);
  // ceiling - units cannot underflow, and adding at most that much cannot overflow.
  bucket.units += std::min(shape.units_per_token(), shape.ceiling_units() - bucket.units);
  return status_of(bucket, shape);
}

bool is_full(const BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept {
  BucketState refilled = bucket;
  refill(refilled, shape, now_ns);
  return refilled.units >= shape.capacity_units();
}

BucketState reshape_bucket(const BucketState& bucket, const BucketShape& old_shape, const BucketShape& new_shape,
                           std::uint64_t now_ns) noexcept {
  BucketState converted = bucket;
  refill(converted, old_shape, now_ns);
  // At most (2^64 - 1)^2: fits in 128 bits; the quotient may not fit in 64 until clamped.
  Wide units = Wide{converted.units} * new_shape.units_per_token() / old_shape.units_per_token();
  converted.units = static_cast<std::uint64_t>(std::min<Wide>(units, new_shape.capacity_units()));
  return converted;
}

std::uint64_t retry_after_seconds(const BucketStatus& status) noexcept {
  return std::max<std::uint64_t>(1, seconds_rounded_up(status.ns_until_next));
}

}  // namespace arbiter
