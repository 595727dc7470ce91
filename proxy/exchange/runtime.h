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
#include "policies/rate_limit/rate_limit_policy.h"
#include "proxy/config/config.h"
#include "proxy/exchange/router.h"

namespace arbiter {

class ConcurrencyPolicy;
class ConflictLog;
class EtagPolicy;
class MemoryBucketStore;
class MemoryWriteQueues;
class MemoryVersionStore;
class MemorySlotTable;

struct RouteRuntime {
  const RouteConfig* config = nullptr;
  std::vector<std::shared_ptr<Policy>> policies;
  // The largest response body any policy of this route wants to see; 0 = stream everything.
  std::size_t response_body_limit = 0;
};

// What outlives one Runtime: the policies' shared state, found again by route name when a
// reload builds the next Runtime, so a route keeps its token buckets and in-flight slots across
// reloads, and a policy whose configuration did not change is the very same object (its
// counters go on). Resource state is keyed by resource, not by route: every route's ETag policy
// shares one ETag table and one set of write queues, keyed by the resource key, so routes that
// resolve to the same key (GET/PUT on one route, PATCH on another) see one version and take
// turns in one queue. The write queues and the conflict log are never replaced; the ETag table
// (a lossy cache) holds the largest max_entries of the routes and is replaced when that changes.
// Used by one thread at a time (the reload lock).
class RuntimeState {
 public:
  RuntimeState();
  ~RuntimeState();

  std::shared_ptr<Policy> rate_limit_policy(const RouteConfig& route);
  std::shared_ptr<Policy> concurrency_policy(const RouteConfig& route);
  // Call size_resource_state(routes) first, for the routes of the Runtime being built.
  std::shared_ptr<Policy> etag_policy(const RouteConfig& route);
  // Sizes the shared ETag table for these routes: the largest etag.max_entries among them.
  void size_resource_state(const std::vector<RouteConfig>& routes);
  const std::shared_ptr<ConflictLog>& conflict_log() const noexcept { return conflicts_; }
  // Forgets the state of routes the latest configuration no longer has (Runtimes still in use
  // keep theirs alive until their last request ends).
  void keep_only(const std::vector<RouteConfig>& routes);

 private:
  struct RouteState {
    std::shared_ptr<RateLimitPolicy> rate_limit;
    std::shared_ptr<ConcurrencyPolicy> concurrency;
    std::shared_ptr<EtagPolicy> etag;
    // As configured (the policy fills in derived limit names), to tell an edit from no edit.
    std::optional<RateLimitPolicyConfig> rate_limit_config;
    std::shared_ptr<MemorySlotTable> slots;
  };
  std::shared_ptr<MemoryBucketStore> buckets_;  // one for every route: limit ids are "route/limit"
  std::shared_ptr<MemoryWriteQueues> write_queues_;
  std::shared_ptr<MemoryVersionStore> versions_;  // null while no route has an ETag policy
  std::shared_ptr<ConflictLog> conflicts_;
  std::map<std::string, RouteState, std::less<>> routes_;
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
  // Appends `policy` to route i's chain: for policies made outside the configuration (tests,
  // fuzzers). Only before the Runtime is shared with a worker.
  void append_policy(std::size_t route, std::shared_ptr<Policy> policy);

 private:
  Config config_;
  Router router_;
  std::vector<RouteRuntime> routes_;
};

}  // namespace arbiter
