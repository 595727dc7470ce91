#pragma once
// The effective configuration as the workers use it: the parsed Config, its compiled router,
// and each route's policy chain. Immutable once built and shared by every worker; a request
// holds a reference to the Runtime it started under, so a reload never changes the policies
// of a request in flight.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "policies/policy.h"
#include "policies/policy_kind.h"
#include "policies/store/resource_stores.h"
#include "proxy/config/config.h"
#include "proxy/exchange/router.h"

namespace arbiter {

struct RouteRuntime {
  const RouteConfig* config = nullptr;
  std::vector<std::shared_ptr<Policy>> policies;
  // The largest response body any policy of this route wants to see; 0 = stream everything.
  std::size_t response_body_limit = 0;
};

// What outlives one Runtime: each policy kind's state (policies/policy_kind.h), made the first
// time a configuration uses the kind and kept for the life of the process, so that a reload
// finds the policies' shared state again (token buckets, in-flight slots, the ETag table, write
// queues, conflict log and locks: the resource state in ResourceStores) and a route whose policy configuration did not change keeps the
// very same policy object (its counters go on). Used by one thread at a time (the reload lock).
class RuntimeState {
 public:
  RuntimeState();
  ~RuntimeState();

  // The policies of a Runtime being built: one list per route of `config`, in chain order.
  std::vector<std::vector<std::shared_ptr<Policy>>> policies_for(const Config& config);

  // The resource state the kinds share, and Arbiter's own endpoints read (locks, conflicts).
  ResourceStores& stores() noexcept { return stores_; }

 private:
  ResourceStores stores_;  // declared first: outlives the kinds' states, which refer to it
  // By kind: the very object, so that a state only ever meets configs its own kind read.
  std::map<const PolicyKind*, std::unique_ptr<PolicyKindState>> kinds_;
};

class Runtime {
 public:
  // Builds the policy chains from `state`, which it updates (see RuntimeState).
  Runtime(Config config, RuntimeState& state);
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const Config& config() const noexcept { return config_; }
  const Router& router() const noexcept { return router_; }
  const RouteRuntime& route(std::size_t i) const { return routes_[i]; }
  std::size_t route_count() const noexcept { return routes_.size(); }
  // Appends `policy` to route i's chain: for policies made outside the configuration (tests).
  // Only before the Runtime is shared with a worker.
  void append_policy(std::size_t route, std::shared_ptr<Policy> policy);

 private:
  Config config_;
  Router router_;
  std::vector<RouteRuntime> routes_;
};

}  // namespace arbiter
