#include "policies/etag/etag_kind.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "policies/etag/etag_config.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/resource_stores.h"

namespace arbiter {

namespace {

constexpr std::string_view kDecisions = "arbiter_etag_decisions_total";
constexpr std::string_view kHitRatio = "arbiter_etag_hit_ratio";
constexpr std::string_view kEntries = "arbiter_etag_entries";
constexpr std::string_view kHistoryVersions = "arbiter_history_versions";
constexpr std::string_view kHistoryResources = "arbiter_history_resources";
constexpr std::string_view kHistoryBytes = "arbiter_history_bytes";
constexpr std::string_view kHistoryRecorded = "arbiter_history_recorded_total";
constexpr std::string_view kHistoryDropped = "arbiter_history_dropped_total";

// Resource state is keyed by resource, not by route: every route's ETag policy shares one
// ETag table and one set of write queues, keyed by the resource key, so routes that resolve to
// the same key (GET/PUT on one route, PATCH on another) see one version and take turns in one
// queue. The write queues and the conflict log are the process's (ResourceStores), never
// replaced; the ETag table (a lossy cache) holds the largest max_entries of the routes and is
// replaced when that changes.
class EtagState final : public PolicyKindState {
 public:
  explicit EtagState(ResourceStores& stores) : stores_(stores) {}
  std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) override {
    size_versions(uses);
    return routes_.update(uses, [&](const Use& use, std::shared_ptr<EtagPolicy>& policy) {
      const EtagPolicyConfig& config = static_cast<const EtagConfig&>(*use.config).settings();
      if (policy == nullptr || !(policy->config() == config) || &policy->store() != versions_.get()) {
        policy = std::make_shared<EtagPolicy>(std::string(use.route), config, versions_, stores_.write_turns,
                                              stores_.feed, stores_.history);
      }
      return policy;
    });
  }

 private:
  // The shared table for these routes: the largest max_entries among them.
  void size_versions(std::span<const Use> uses) {
    std::size_t capacity = 0;
    for (const Use& use : uses) {
      capacity = std::max(capacity, static_cast<const EtagConfig&>(*use.config).settings().max_entries);
    }
    if (capacity == 0) {
      // No ETag route: the table goes (Runtimes still using it keep it until their last request
      // ends); the write queues stay, as always.
      versions_.reset();
      stores_.versions = nullptr;
      return;
    }
    // A new capacity needs a new table (the versions are then learned again from the backend);
    // the write queues carry over, so turns held under the old table still serialize.
    if (versions_ == nullptr || versions_->max_entries() != capacity) {
      versions_ = std::make_shared<MemoryVersionStore>(capacity);
    }
    stores_.versions = versions_;
  }

  ResourceStores& stores_;  // the write queues and the conflict log; the table is published there
  std::shared_ptr<MemoryVersionStore> versions_;  // null while no route has an ETag policy
  RouteEntries<std::shared_ptr<EtagPolicy>> routes_;
};

class EtagKind final : public PolicyKind {
 public:
  std::string_view name() const noexcept override { return "etag"; }
  std::vector<std::string_view> route_keys() const override { return {"etag", "history"}; }
  // Last: it may read the backend, so it runs after the cheap refusals and within a slot.
  int chain_position() const noexcept override { return 300; }
  std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext& context) const override {
    return read_etag_config(*this, route, context);
  }
  std::unique_ptr<PolicyKindState> make_state(ResourceStores& stores) const override {
    return std::make_unique<EtagState>(stores);
  }
  void declare_metrics(MetricsWriter& out) const override {
    out.declare(kDecisions,
                "ETag policy decisions by route: read_tagged (a 2xx read sent with an ETag, 304s included), "
                "not_modified (304 for If-None-Match), conflict (a stale write refused with conflict_status, 409 or "
                "412), precondition_required (428), write_forwarded, queue_full and queue_timeout (503: the "
                "resource's write queue), verify_failure (503: the current version could not be read), "
                "unknown_after_write (the new ETag of a write could not be learned), merged (a stale write merged into the "
                "current version, on_conflict = \"merge\"), merge_conflict (a stale write whose changes overlapped: "
                "refused), patch_applied (a PATCH applied by Arbiter and sent as a PUT), memento (a read answered "
                "from the history for Accept-Datetime).",
                MetricsWriter::Type::Counter);
    out.declare(kHitRatio,
                "Share of tagged reads whose If-None-Match already named the current ETag, so that Arbiter answered "
                "304 without a body: not_modified / read_tagged since start (NaN before the first tagged read).",
                MetricsWriter::Type::Gauge);
    out.declare(kEntries, "Resources in the route's ETag table (tombstones of forgotten tags included).",
                MetricsWriter::Type::Gauge);
    out.declare(kHistoryVersions, "Versions the route's history holds ([route.history]).", MetricsWriter::Type::Gauge);
    out.declare(kHistoryResources, "Resources the route's history holds.", MetricsWriter::Type::Gauge);
    out.declare(kHistoryBytes, "Bytes the route's history holds, as counted against its max_bytes.",
                MetricsWriter::Type::Gauge);
    out.declare(kHistoryRecorded, "Versions the route's history recorded.", MetricsWriter::Type::Counter);
    out.declare(kHistoryDropped,
                "What the route's history dropped, by reason: keep (a resource's oldest version over `keep`), "
                "max_bytes (the route's oldest version over max_bytes), max_resources (a resource dropped whole), "
                "body_omitted (a version recorded without its body, over max_version_bytes).",
                MetricsWriter::Type::Counter);
  }
};

}  // namespace

void EtagPolicy::write_metrics(std::string_view route, MetricsWriter& out) const {
  EtagCounters c = counters();
  const std::pair<std::string_view, std::uint64_t> decisions[] = {
      {"read_tagged", c.reads_tagged},
      {"not_modified", c.not_modified},
      {"conflict", c.conflicts},
      {"precondition_required", c.precondition_required},
      {"write_forwarded", c.writes_forwarded},
      {"queue_full", c.queue_full},
      {"queue_timeout", c.queue_timeouts},
      {"verify_failure", c.verify_failures},
      {"unknown_after_write", c.etag_unknown_after_write},
      {"merged", c.merged},
      {"merge_conflict", c.merge_conflicts},
      {"patch_applied", c.patches_applied},
      {"memento", c.mementos},
  };
  for (const auto& [decision, count] : decisions) {
    out.sample(kDecisions, {{"route", route}, {"decision", decision}}, static_cast<double>(count));
  }
  out.sample(kHitRatio, {{"route", route}},
             c.reads_tagged == 0 ? std::numeric_limits<double>::quiet_NaN()
                                 : static_cast<double>(c.not_modified) / static_cast<double>(c.reads_tagged));
  out.sample(kEntries, {{"route", route}}, static_cast<double>(store().size()));
  if (history_ == nullptr) return;
  HistoryStats stats = history_->stats(route_name_);
  out.sample(kHistoryVersions, {{"route", route}}, static_cast<double>(stats.versions));
  out.sample(kHistoryResources, {{"route", route}}, static_cast<double>(stats.resources));
  out.sample(kHistoryBytes, {{"route", route}}, static_cast<double>(stats.bytes));
  out.sample(kHistoryRecorded, {{"route", route}}, static_cast<double>(stats.recorded));
  const std::pair<std::string_view, std::uint64_t> dropped[] = {{"keep", stats.dropped_keep},
                                                                 {"max_bytes", stats.dropped_bytes},
                                                                 {"max_resources", stats.dropped_resources},
                                                                 {"body_omitted", stats.bodies_omitted}};
  for (const auto& [reason, count] : dropped) {
    out.sample(kHistoryDropped, {{"route", route}, {"reason", reason}}, static_cast<double>(count));
  }
}

const PolicyKind& etag_kind() {
  static const EtagKind kind;
  return kind;
}

}  // namespace arbiter
