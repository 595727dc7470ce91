#pragma once
// Where the rate-limit policy keeps its token buckets, shared by every worker thread:
// (limit id, key) -> bucket. An interface, so that a later store (Redis) can share the buckets
// among several Arbiter instances behind one load balancer and run the same arithmetic
// (policies/rate_limit/token_bucket.h) there.
//
// A limit id names one limit everywhere: the policy uses "<route>/<limit name>", so two routes'
// limits never share buckets and a route that is configured again under the same names finds
// its buckets where it left them. A key nobody has seen (or that the store dropped, which it
// does only to a full bucket) gets a full bucket, or, when the store has no room to spare, a
// share of the limit's overflow bucket (TakeResult::overflow).
//
// Every call may complete later: see policies/store/store_call.h for the contract (which thread
// completes, cancelling, errors).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policies/rate_limit/token_bucket.h"
#include "policies/store/store_call.h"

namespace arbiter {

class BucketStore {
 public:
  virtual ~BucketStore() = default;

  // Takes one token from the bucket of `key` under `limit_id`, refilled to now_ns (the
  // monotonic clock, see monotonic_ns()). Every call for one limit id passes the same shape,
  // except across a reconfiguration: then the existing buckets are converted to the new shape,
  // keeping their level (clamped to the new burst), never refilled. Thread-safe. The strings
  // are read before the call returns.
  virtual StoreCall take(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                         std::uint64_t now_ns, Completion<TakeResult> done) = 0;
  // Gives back the token a take() of this request spent, when another limit refused it; the
  // bucket never exceeds its burst. Thread-safe.
  virtual StoreCall refund(std::string_view limit_id, std::string_view key, const BucketShape& shape,
                           std::uint64_t now_ns, Completion<BucketStatus> done) = 0;
  // Buckets held, over every limit, as far as this process knows (a gauge for /metrics; never
  // waits).
  virtual std::size_t size() const = 0;
  // Buckets held for one limit (0 for a limit never seen), as far as this process knows; never
  // waits.
  virtual std::size_t size(std::string_view limit_id) const = 0;
};

}  // namespace arbiter
