#pragma once
// Token-bucket arithmetic, exact and in integers, on a monotonic clock in nanoseconds.
//
// A limit of `count` requests per `per` (1 s, 1 min, 1 h, or any whole seconds) with room for
// `burst` requests is kept in units chosen so that nothing is ever rounded: one token is
// per_ns / g units and every nanosecond adds count / g units, where g = gcd(count, per_ns).
//
// A bucket is full at burst tokens, but keeps refilling up to one unit short of burst + 1: the
// fraction of a token gathered towards the next is not thrown away. On a nanosecond clock a
// client at exactly the rate (3/s, say) cannot space its requests exactly; some gaps come out a
// nanosecond short of 1/rate and others a nanosecond long, and the kept fraction carries the
// long gaps' surplus over to the short ones, so such a client is never refused, whatever the
// burst. The price is the "+1 for rounding": over any interval of T ns a bucket admits at most
// burst + count × T / per_ns + 1 requests (it starts with less than burst + 1 tokens and gains
// exactly count × T / per_ns).
//
// Pure functions over a BucketState that the caller keeps (and locks): the memory store keeps
// them in a table, a shared store would keep them in Redis and run the same arithmetic there.

#include <chrono>
#include <cstdint>
#include <optional>

#include "policies/policy.h"

namespace arbiter {

inline constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

// The monotonic clock's reading in nanoseconds since its epoch; 0 for a time before it.
std::uint64_t monotonic_ns(MonotonicTime time) noexcept;
// Whole seconds, rounded up: 1 ns is 1 s, 0 is 0.
std::uint64_t seconds_rounded_up(std::uint64_t ns) noexcept;

// A limit's rate and size, in the units the arithmetic uses. Immutable; cheap to copy.
class BucketShape {
 public:
  // nullopt when count, per or burst is 0, or burst tokens would not fit in 64-bit units
  // with the fraction of the next (burst > max_burst(count, per)). max_keys: see below; 0 is
  // taken as 1.
  static std::optional<BucketShape> make(std::uint64_t count, std::chrono::seconds per, std::uint64_t burst,
                                         std::size_t max_keys = kDefaultMaxKeys);
  // The largest burst make() accepts for this rate (0 when count or per is 0). At least
  // 5,000,000 for every rate per hour or faster.
  static std::uint64_t max_burst(std::uint64_t count, std::chrono::seconds per) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::chrono::seconds per() const noexcept { return per_; }
  std::uint64_t burst() const noexcept { return burst_; }
  // How many buckets of this limit a store that keeps them in memory holds at most (one a
  // key); a shared store may bound them by expiry instead. Part of the shape so that a store
  // learns it with every call and needs no separate registration.
  std::size_t max_keys() const noexcept { return max_keys_; }

  std::uint64_t units_per_token() const noexcept { return units_per_token_; }
  std::uint64_t units_per_ns() const noexcept { return units_per_ns_; }
  // burst tokens: a bucket holding this much is full.
  std::uint64_t capacity_units() const noexcept { return capacity_units_; }
  // The most a bucket holds: a unit short of burst + 1 tokens (see above).
  std::uint64_t ceiling_units() const noexcept { return capacity_units_ + units_per_token_ - 1; }
  // Nanoseconds an empty bucket takes to fill, rounded up.
  std::uint64_t ns_to_fill() const noexcept { return ns_to_fill_; }
  // ... and to reach the ceiling: no longer stretch of refill can count.
  std::uint64_t ns_to_ceiling() const noexcept { return ns_to_ceiling_; }

  bool operator==(const BucketShape&) const = default;

  static constexpr std::size_t kDefaultMaxKeys = 100000;

 private:
  BucketShape() = default;

  std::uint64_t count_ = 0;
  std::chrono::seconds per_{0};
  std::uint64_t burst_ = 0;
  std::size_t max_keys_ = kDefaultMaxKeys;
  std::uint64_t units_per_token_ = 0;
  std::uint64_t units_per_ns_ = 0;
  std::uint64_t capacity_units_ = 0;
  std::uint64_t ns_to_fill_ = 0;
  std::uint64_t ns_to_ceiling_ = 0;
};

// One bucket: its level when last updated. 16 bytes.
struct BucketState {
  std::uint64_t units = 0;
  std::uint64_t updated_ns = 0;
};

// Where a bucket stands after a take or a refund.
struct BucketStatus {
  std::uint64_t remaining = 0;      // whole tokens left
  std::uint64_t ns_until_next = 0;  // until one token is there; 0 when remaining > 0
  std::uint64_t ns_until_full = 0;  // until the bucket holds burst tokens; 0 when it does
};

struct TakeResult {
  bool admitted = false;
  BucketStatus status;
  // The store had no room for the key's own bucket and took from the limit's shared overflow
  // bucket (see MemoryBucketStore).
  bool overflow = false;
};

// A bucket as a new key gets it: full, burst tokens. (A key nobody has seen has not used its
// burst.)
BucketState full_bucket(const BucketShape& shape, std::uint64_t now_ns) noexcept;

// Refills to now_ns, then takes one token if there is one. A now_ns earlier than the last
// update (two threads' clock readings arriving out of order) adds nothing and leaves the
// update time where it was, so no interval is ever counted twice.
TakeResult take_token(BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept;

// Gives one token back (a request that another limit refused), refilling to now_ns first;
// never beyond the ceiling.
BucketStatus refund_token(BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept;

// The bucket would be at burst tokens at now_ns: forgetting it loses nothing, since a new
// bucket starts full.
bool is_full(const BucketState& bucket, const BucketShape& shape, std::uint64_t now_ns) noexcept;

// The bucket carried over to a new shape of its limit (a reload that changed the rate, the
// burst or max_keys): first brought up to now_ns under the old shape, then its level converted
// exactly into the new shape's units (units × new units_per_token / old units_per_token,
// rounded down, so whole tokens stay whole tokens and a fraction of one loses less than a unit
// of the new shape), and clamped to the new burst. It never holds more tokens than it did
// (and no more than the new burst): spent tokens stay spent, and a bucket at 0 tokens stays
// at 0 whatever the new shape. It refills from then on at the new rate.
BucketState reshape_bucket(const BucketState& bucket, const BucketShape& old_shape, const BucketShape& new_shape,
                           std::uint64_t now_ns) noexcept;

// Whole seconds a refused client should wait (Retry-After): the time until one token, rounded
// up, and at least 1.
std::uint64_t retry_after_seconds(const BucketStatus& status) noexcept;

}  // namespace arbiter
