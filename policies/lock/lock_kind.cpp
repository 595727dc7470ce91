#include "policies/lock/lock_kind.h"

#include <utility>

#include "policies/lock/lock_config.h"
#include "policies/store/resource_stores.h"

namespace arbiter {

namespace {

constexpr std::string_view kHeld = "arbiter_locks_held";
constexpr std::string_view kEvents = "arbiter_lock_events_total";
constexpr std::string_view kWait = "arbiter_lock_wait_seconds";

// One lock store for every route (ResourceStores::locks): locks are keyed by resource, so routes
// that resolve to one resource share its lock, and a reload keeps every lock. A route that keeps
// its name keeps its policy's counters while its settings stay the same; the locks taken through
// a route whose [route.lock] went are ended (dropped) when the Runtime without it is built.
class LockState final : public PolicyKindState {
 public:
  explicit LockState(ResourceStores& stores) : stores_(stores) {}
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    std::vector<std::string> routes;
    for (const Use& use : uses) routes.emplace_back(use.route);
    (void)stores_.locks->keep_routes(routes, MonotonicClock::now(), ignored<std::size_t>());
    return routes_.update(uses, [&](const Use& use, std::shared_ptr<LockPolicy>& policy) {
      const LockSettings& settings = static_cast<const LockConfig&>(*use.config).settings();
      if (policy == nullptr || !(policy->settings() == settings) || policy->versions() != stores_.versions.get()) {
        policy = std::make_shared<LockPolicy>(std::string(use.route), settings, stores_.locks, stores_.versions,
                                              stores_.feed);
      }
      return policy;
    });
  }

 private:
  ResourceStores& stores_;
  RouteEntries<std::shared_ptr<LockPolicy>> routes_;
};

class LockKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "lock"; }
  std::vector<std::string_view> route_keys() const override { return {"lock"}; }
  // After the in-flight slot, before the ETag check: a write refused for the lock never reads the
  // backend, and the holder's writes take their ETag turn as before.
  int chain_position() const noexcept override { return 250; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext& context) const override {
    return read_lock_config(*this, route, context);
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores& stores) const override {
    return std::make_unique<LockState>(stores);
  }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kHeld, "Lock leases held now, by the route they were taken through.", MetricsWriter::Type::Gauge);
    out.declare(kEvents,
                "Lock events by route: granted, refreshed, released (UNLOCK), expired, broken (admin), dropped (its "
                "route's [route.lock] was removed), refused (423), queued (waited for a lock).",
                MetricsWriter::Type::Counter);
    out.declare(kWait, "Time requests spent queued for a lock (granted, admitted or refused after waiting), by route.",
                MetricsWriter::Type::Histogram);
  }
};

}  // namespace

void LockPolicy::write_metrics(std::string_view route, MetricsWriter& out) const {
  MonotonicTime now = MonotonicClock::now();
  out.sample(kHeld, {{"route", route}}, static_cast<double>(store_->held(route, now)));
  LockCounters c = counters();
  const std::pair<std::string_view, std::uint64_t> events[] = {
      {"granted", c.granted},
      {"refreshed", c.refreshed},
      {"released", c.released},
      {"expired", store_->ended(route, LockEnd::Expired)},
      {"broken", store_->ended(route, LockEnd::Broken)},
      {"dropped", store_->ended(route, LockEnd::Dropped)},
      {"refused", c.refused},
      {"queued", c.queued}};
  for (const auto& [event, count] : events) {
    out.sample(kEvents, {{"route", route}, {"event", event}}, static_cast<double>(count));
  }
  auto buckets = wait_histogram();
  out.histogram(kWait, {{"route", route}}, kWaitBuckets, buckets, wait_seconds_sum());
}

const PolicyKind& lock_kind() {
  static const LockKind kind;
  return kind;
}

}  // namespace arbiter
