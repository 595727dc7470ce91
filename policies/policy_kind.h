#pragma once
// A policy kind: everything about one sort of policy, kept in its own folder
// (policies/<kind>/): which keys of a [[route]] it reads and how (with positioned
// diagnostics, policies/config_reader.h), its settings as /config JSON and in the route table,
// the state its policies share across reloads (stores, tables, queues), and its /metrics
// families. proxy/ knows kinds only through this interface and the PolicyRegistry
// (policies/policy_registry.h); a new kind is its files plus one registration line.
//
// Lifetime: a kind is immutable and outlives every Config read with it (the product's kinds
// are function-local statics). Configs and states are used by one thread at a time (the
// loader, the reload lock); policies are shared by the workers (policies/policy.h).

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/config_reader.h"
#include "policies/metrics_writer.h"
#include "policies/policy.h"

namespace arbiter {

class PolicyKind;
struct ResourceStores;  // policies/store/resource_stores.h

// One route's settings of one kind, as read from the file: immutable once read, shared by the
// copies of the Config.
class PolicyConfig {
 public:
  explicit PolicyConfig(const PolicyKind& kind) : kind_(kind) {}
  virtual ~PolicyConfig() = default;
  PolicyConfig(const PolicyConfig&) = delete;
  PolicyConfig& operator=(const PolicyConfig&) = delete;

  const PolicyKind& kind() const noexcept { return kind_; }
  // The same kind with the same settings: a reload keeps the route's policy (and its counters).
  virtual bool same_as(const PolicyConfig& other) const = 0;
  // Adds the kind's keys to the route's object of GET /config, values written as the file
  // would write them (proxy/control/config_json.h).
  virtual void write_json(nlohmann::ordered_json& route) const = 0;
  // The route table's entry (arbiter --check): the kind with what most changes its behaviour,
  // e.g. "etag(verify=upstream)".
  virtual std::string summary() const = 0;
  // Methods the route takes because of this policy, beyond its `methods` (the lock policy's
  // LOCK and UNLOCK, which it answers itself).
  virtual std::vector<std::string_view> added_methods() const { return {}; }

 private:
  const PolicyKind& kind_;
};

// The usual PolicyConfig: a settings struct with operator==, compared whole.
template <typename Settings>
class SettingsConfig : public PolicyConfig {
 public:
  SettingsConfig(const PolicyKind& kind, Settings settings) : PolicyConfig(kind), settings_(std::move(settings)) {}
  const Settings& settings() const noexcept { return settings_; }
  bool same_as(const PolicyConfig& other) const override {
    const auto* same = dynamic_cast<const SettingsConfig*>(&other);
    return same != nullptr && same->settings_ == settings_;
  }

 private:
  Settings settings_;
};

using PolicyConfigs = std::vector<std::shared_ptr<const PolicyConfig>>;

// The settings of the route's policy whose config is a SettingsConfig<Settings>; nullptr when
// the route has none (for tests and tools that know the kind).
template <typename Settings>
const Settings* settings_of(const PolicyConfigs& configs) {
  for (const auto& config : configs) {
    if (const auto* typed = dynamic_cast<const SettingsConfig<Settings>*>(config.get())) return &typed->settings();
  }
  return nullptr;
}

// What a kind's reader may know of the route whose table it reads.
struct RouteContext {
  std::string_view name;                     // empty when the route has none (already reported)
  std::optional<std::string_view> path;      // the route's path pattern when it is valid
  const std::vector<std::string>& methods;   // upper-case; empty = every method
  bool methods_valid = true;                 // false: some were refused (already reported)
  // The timeouts of the upstream the route names, when it names a defined one (the ETag
  // policy leases its write turns for them).
  struct UpstreamTimeouts {
    std::chrono::milliseconds connect;
    std::chrono::milliseconds response;
  };
  std::optional<UpstreamTimeouts> upstream_timeouts = std::nullopt;
  // [server] control_prefix, where Arbiter's own endpoints are (links to them: "/_arbiter").
  std::string_view control_prefix = {};
};

// A kind's state across Runtimes (reloads): what its policies share, and each route's policy,
// found again by route name so that a route whose settings did not change keeps its policy
// object and counters. Owned by the RuntimeState (proxy/exchange/runtime.h); used by one thread
// at a time.
class PolicyKindState {
 public:
  struct Use {
    std::string_view route;
    std::shared_ptr<const PolicyConfig> config;  // of this state's kind; the state may keep it
  };

  virtual ~PolicyKindState() = default;
  // The policies of the Runtime being built, one per use, in order. State of routes not among
  // `uses` is forgotten (Runtimes still holding it keep it alive until their last request ends).
  // Called once for every Runtime built, with no uses when no route has the kind.
  virtual std::vector<std::shared_ptr<Policy>> policies(std::span<const Use> uses) = 0;
};

// What a PolicyKindState keeps for each route, found again by route name. update() calls
// fn(use, entry) for each use, with the route's entry from the last call (value-initialised for
// a route new to it), to bring it up to date and return the route's policy; entries of routes
// not among the uses are dropped.
template <typename Entry>
class RouteEntries {
 public:
  template <typename Fn>
  std::vector<std::shared_ptr<Policy>> update(std::span<const PolicyKindState::Use> uses, Fn&& fn) {
    std::map<std::string, Entry, std::less<>> kept;
    std::vector<std::shared_ptr<Policy>> policies;
    for (const PolicyKindState::Use& use : uses) {
      Entry entry{};
      if (auto it = entries_.find(use.route); it != entries_.end()) entry = it->second;
      policies.push_back(fn(use, entry));
      kept.insert_or_assign(std::string(use.route), std::move(entry));
    }
    entries_ = std::move(kept);
    return policies;
  }

 private:
  std::map<std::string, Entry, std::less<>> entries_;
};

class PolicyKind {
 public:
  virtual ~PolicyKind() = default;

  // "etag", "rate_limit", ...: unique in a registry; the same as its policies' kind().
  virtual std::string_view name() const noexcept = 0;
  // The keys of a [[route]] table it reads, e.g. {"etag"} or {"limit", "rate_limit_headers"}.
  virtual std::vector<std::string_view> route_keys() const = 0;
  // Where its policy runs in a route's request chain: lower first (the response phase runs the
  // other way). The cheap refusals come first, the ones that may read the backend last.
  virtual int chain_position() const noexcept = 0;
  // Reads its keys of one route: nullptr when the route does not use the kind, or after
  // reporting why its settings were refused (route.error() and the readers of `route` and of its
  // child tables report with the route's subject).
  virtual std::shared_ptr<const PolicyConfig> read(const TableReader& route, const RouteContext& context) const = 0;
  // A fresh state, for a RuntimeState that meets the kind for the first time. `stores` is the
  // process's shared resource state, which outlives the state made.
  virtual std::unique_ptr<PolicyKindState> make_state(ResourceStores& stores) const = 0;
  // Its /metrics families, in the order they are exposed; its policies add the samples.
  virtual void declare_metrics(MetricsWriter& out) const { (void)out; }
};

}  // namespace arbiter
