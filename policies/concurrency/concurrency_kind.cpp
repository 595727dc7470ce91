#include "policies/concurrency/concurrency_kind.h"

#include <utility>

#include "policies/concurrency/concurrency_config.h"
#include "policies/store/memory_slot_table.h"

namespace arbiter {

namespace {

constexpr std::string_view kDecisions = "arbiter_concurrency_decisions_total";
constexpr std::string_view kInFlight = "arbiter_in_flight";
constexpr std::string_view kQueued = "arbiter_queued";

// Each route has its own slot table, kept across reloads: the slots held and the queue carry
// over, so requests in flight under the old limits count against the new ones, and a changed
// max_keys applies to the same table (its 503s name the new number).
class ConcurrencyState final : public PolicyKindState {
 public:
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    return routes_.update(uses, [&](const Use& use, Route& route) {
      const ConcurrencyConfig& config = static_cast<const ConcurrencyConfigEntry&>(*use.config).settings();
      if (route.policy == nullptr || !(route.policy->config() == config)) {
        if (route.slots == nullptr) {
          route.slots = std::make_shared<MemorySlotTable>(config.max_keys);
        } else {
          route.slots->set_max_keys(config.max_keys);
        }
        route.policy = std::make_shared<ConcurrencyPolicy>(std::string(use.route), config, route.slots);
      }
      return route.policy;
    });
  }

 private:
  struct Route {
    std::shared_ptr<ConcurrencyPolicy> policy;
    std::shared_ptr<MemorySlotTable> slots;
  };
  RouteEntries<Route> routes_;
};

class ConcurrencyKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "concurrency"; }
  std::vector<std::string_view> route_keys() const override { return {"concurrency"}; }
  // After the rate limit, before the ETag check: the slot is held while the request is at the
  // backend, ETag re-reads included.
  int chain_position() const noexcept override { return 200; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext&) const override {
    return read_concurrency_config(*this, route);
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores&) const override { return std::make_unique<ConcurrencyState>(); }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kDecisions,
                "In-flight limit decisions by route: admitted (given a slot, at once or after waiting), queued (had "
                "to wait), timed_out (waited queue_timeout: 503), rejected (queue full or too many keys: 503).",
                MetricsWriter::Type::Counter);
    out.declare(kInFlight, "Requests of the route holding an in-flight slot.", MetricsWriter::Type::Gauge);
    out.declare(kQueued, "Requests of the route waiting for an in-flight slot.", MetricsWriter::Type::Gauge);
  }
};

}  // namespace

void ConcurrencyPolicy::write_metrics(std::string_view route, MetricsWriter& out) const {
  ConcurrencyCounters c = counters();
  const std::pair<std::string_view, std::uint64_t> decisions[] = {
      {"admitted", c.admitted}, {"queued", c.queued}, {"timed_out", c.timed_out}, {"rejected", c.rejected}};
  for (const auto& [decision, count] : decisions) {
    out.sample(kDecisions, {{"route", route}, {"decision", decision}}, static_cast<double>(count));
  }
  out.sample(kInFlight, {{"route", route}}, static_cast<double>(c.in_flight));
  out.sample(kQueued, {{"route", route}}, static_cast<double>(c.waiting));
}

const PolicyKind& concurrency_kind() {
  static const ConcurrencyKind kind;
  return kind;
}

}  // namespace arbiter
