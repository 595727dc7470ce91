#pragma once
// Rate limits: token buckets that refuse excess requests with 429 before a byte of them goes
// upstream, and tell clients exactly when to come back, in the standard fields.
//
// One RateLimitPolicy per route holds all of the route's [[route.limit]] entries. A limit
// applies to a request when it lists no methods or lists the request's method (HEAD is not
// implied by GET); the request must pass every limit that applies. The policy takes a token
// from each, and if any refuses, gives the others theirs back and answers:
//
//   429 application/problem+json, type https://iana.org/assignments/http-problem-types#quota-exceeded
//   (the type draft-ietf-httpapi-ratelimit-headers registers), "violated-policies": [names]
//   Retry-After: whole seconds until every violated limit has a token, rounded up (at least 1)
//   RateLimit-Policy: "per-client";q=40;w=2      q = burst, w = seconds to refill it all
//   RateLimit: "per-client";r=0;t=1              r = whole tokens left; t = seconds until the
//                                                next token when r = 0, else until full
//
// with one list member per limit that applied (in configuration order). An admitted response
// carries the same two fields as of its admission, unless send_headers is false; they replace
// any the backend sent, so that they name exactly the limits Arbiter holds the client to.
//
// Counting: a limit that refuses counts the request as limited; when every limit admits, each
// counts it as admitted. A limit whose token was given back counts nothing. Besides, a limit
// counts every request that the store decided from its shared overflow bucket (a new key while
// the limit's max_keys buckets all still hold spent tokens), admitted or not.
//
// The store: each take (and refund) may complete later (policies/store/store_call.h); the request
// then waits for it, parked, and a store that fails or does not answer within kStoreCallTimeout
// gets the request a 503 problem+json (urn:arbiter:problem:store-unavailable), not forwarded.
//
// Threading: one RateLimitPolicy serves every worker; its counters are atomics, the buckets
// are in the (thread-safe) store, and the rest is immutable.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policies/store/bucket_store.h"
#include "policies/policy.h"
#include "policies/request_key.h"
#include "policies/rate_limit/token_bucket.h"

namespace arbiter {

inline constexpr std::string_view kQuotaExceededType =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

struct RateLimitConfig {
  using KeyKind = arbiter::KeyKind;

  std::string name;                    // empty: default_limit_name(route, index)
  std::uint64_t count = 1;             // requests ...
  std::chrono::seconds per{1};         // ... per this period
  std::uint64_t burst = 1;             // bucket size, in requests
  KeyKind key_kind = KeyKind::ClientAddress;
  std::string header;                  // KeyKind::Header: the field name (absent: see request_key())
  std::vector<std::string> methods;    // only these spend tokens; empty = every method
  std::size_t max_keys = BucketShape::kDefaultMaxKeys;  // buckets kept for this limit

  bool operator==(const RateLimitConfig&) const = default;
};

struct RateLimitPolicyConfig {
  std::vector<RateLimitConfig> limits;
  bool send_headers = true;  // RateLimit fields on admitted responses (429s always carry them)

  bool operator==(const RateLimitPolicyConfig&) const = default;
};

// The name a limit gets when the configuration gives none: "<route>-limit-<index>", index
// counting the route's limits from 0 in file order.
std::string default_limit_name(std::string_view route_name, std::size_t index);
// The default burst: one second of the rate, rounded up, at least 1.
std::uint64_t default_burst(std::uint64_t count, std::chrono::seconds per) noexcept;
// "20/s", "100/m", "1000/h"; other periods in seconds, e.g. "5/30s".
std::string rate_text(std::uint64_t count, std::chrono::seconds per);
// A limit name goes into the RateLimit fields as a structured-field string (RFC 9651), which
// holds printable ASCII only: true when it is non-empty and nothing else.
bool is_valid_limit_name(std::string_view name) noexcept;

// One limit's decisions since the policy was made.
struct RateLimitCounters {
  std::string name;
  std::uint64_t admitted = 0;  // requests it let through (all the route's limits admitted them)
  std::uint64_t limited = 0;   // requests it refused
  std::uint64_t overflow = 0;  // requests whose key had no bucket of its own: the shared overflow bucket decided
};

class RateLimitPolicy final : public Policy {
 public:
  // Fills in default names. Throws std::invalid_argument for a config the loader would have
  // refused: no limits, a zero count, period or burst, a burst too large for the rate
  // (BucketShape::max_burst), a header key without a field name, a name that is not
  // is_valid_limit_name(), or two limits with one name; or for a null store.
  RateLimitPolicy(std::string route_name, RateLimitPolicyConfig config, std::shared_ptr<BucketStore> store);

  std::string_view kind() const noexcept override { return "rate_limit"; }
  std::string explain(const RequestView& request) const override;
  Decision on_request(const RequestView& request, std::unique_ptr<ExchangeState>& state) override;
  ResponseStep on_response(const RequestView& request, ResponseView& response, ExchangeState* state) override;

  // One entry a limit, in configuration order.
  std::vector<RateLimitCounters> counters() const;
  // Defined in policies/rate_limit/rate_limit_kind.cpp, beside the families it fills.
  void write_metrics(std::string_view route, MetricsWriter& out) const override;
  // The config with every default filled in (names).
  const RateLimitPolicyConfig& config() const noexcept { return config_; }
  const BucketStore& store() const noexcept { return *store_; }
  const std::string& route_name() const noexcept { return route_name_; }
  // "<route>/<limit name>": the limit's id in the store.
  const std::string& limit_id(std::size_t limit) const { return limits_.at(limit)->id; }

 private:
  class Exchange;
  struct Limit {
    Limit(std::string id, BucketShape shape) : id(std::move(id)), shape(shape) {}
    std::string id;
    BucketShape shape;
    std::string quoted_name;    // the name as a structured-field string
    std::string policy_member;  // this limit's RateLimit-Policy list member
    std::atomic<std::uint64_t> admitted{0};
    std::atomic<std::uint64_t> limited{0};
    std::atomic<std::uint64_t> overflow{0};
  };
  // What one limit said about one request.
  struct Outcome {
    std::size_t limit = 0;
    TakeResult taken;
  };

  Decision decide(const RequestView& request, std::unique_ptr<ExchangeState>& state, Exchange& exchange);
  Decision refuse(std::span<const Outcome> outcomes) const;
  // The RateLimit-Policy and RateLimit fields for these outcomes.
  void add_fields(HeaderList& headers, std::span<const Outcome> outcomes) const;

  std::string route_name_;
  RateLimitPolicyConfig config_;
  std::shared_ptr<BucketStore> store_;
  std::vector<std::unique_ptr<Limit>> limits_;  // one a config_.limits entry; Limit holds atomics
};

}  // namespace arbiter
