#include "policies/rate_limit/rate_limit_kind.h"

#include <utility>

#include "policies/rate_limit/rate_limit_config.h"
#include "policies/store/memory_bucket_store.h"

namespace arbiter {

namespace {

constexpr std::string_view kDecisions = "arbiter_rate_limit_decisions_total";
constexpr std::string_view kBuckets = "arbiter_rate_limit_buckets";
constexpr std::string_view kOverflow = "arbiter_rate_limit_overflow_total";

// One store holds every route's buckets, under "route/limit": a changed limit keeps its
// buckets, whose levels the store carries over to the new shape (spent tokens stay spent).
class RateLimitState final : public PolicyKindState {
 public:
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    return routes_.update(uses, [&](const Use& use, std::shared_ptr<RateLimitPolicy>& policy) {
      // The reader names every limit already, so the policy's config is the settings as read.
      const RateLimitPolicyConfig& config = static_cast<const RateLimitConfigEntry&>(*use.config).settings();
      if (policy == nullptr || !(policy->config() == config)) {
        policy = std::make_shared<RateLimitPolicy>(std::string(use.route), config, buckets_);
      }
      return policy;
    });
  }

 private:
  std::shared_ptr<MemoryBucketStore> buckets_ = std::make_shared<MemoryBucketStore>();
  RouteEntries<std::shared_ptr<RateLimitPolicy>> routes_;
};

class RateLimitKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "rate_limit"; }
  std::vector<std::string_view> route_keys() const override { return {"limit", "rate_limit_headers"}; }
  // First: the cheap refusal.
  int chain_position() const noexcept override { return 100; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext& context) const override {
    return read_rate_limit_config(*this, route, context);
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores&) const override { return std::make_unique<RateLimitState>(); }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kDecisions,
                "Rate-limit decisions by route and limit: admitted (every limit of the route let the request "
                "through) or limited (this limit refused it with 429).",
                MetricsWriter::Type::Counter);
    out.declare(kBuckets, "Token buckets held for the limit (one a key).", MetricsWriter::Type::Gauge);
    out.declare(kOverflow,
                "Requests of a new key decided by the limit's shared overflow bucket, because its max_keys buckets "
                "all still held spent tokens (admitted or limited).",
                MetricsWriter::Type::Counter);
  }
};

}  // namespace

void RateLimitPolicy::write_metrics(std::string_view route, MetricsWriter& out) const {
  // One store holds every route's buckets, so only a per-limit count is meaningful.
  std::vector<RateLimitCounters> all = counters();
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string_view limit = all[i].name;
    out.sample(kDecisions, {{"route", route}, {"limit", limit}, {"decision", "admitted"}},
               static_cast<double>(all[i].admitted));
    out.sample(kDecisions, {{"route", route}, {"limit", limit}, {"decision", "limited"}},
               static_cast<double>(all[i].limited));
    out.sample(kOverflow, {{"route", route}, {"limit", limit}}, static_cast<double>(all[i].overflow));
    out.sample(kBuckets, {{"route", route}, {"limit", limit}}, static_cast<double>(store().size(limit_id(i))));
  }
}

const PolicyKind& rate_limit_kind() {
  static const RateLimitKind kind;
  return kind;
}

}  // namespace arbiter
