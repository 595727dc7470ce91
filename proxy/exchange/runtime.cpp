#include "proxy/exchange/runtime.h"

#include <algorithm>

#include "policies/concurrency/concurrency_policy.h"
#include "policies/store/conflict_log.h"
#include "policies/etag/etag_policy.h"
#include "policies/store/memory_bucket_store.h"
#include "policies/store/memory_slot_table.h"
#include "policies/store/memory_version_store.h"
#include "policies/store/memory_write_queues.h"
#include "policies/rate_limit/rate_limit_policy.h"

namespace arbiter {

RuntimeState::RuntimeState()
    : buckets_(std::make_shared<MemoryBucketStore>()),
      write_queues_(std::make_shared<MemoryWriteQueues>()),
      conflicts_(std::make_shared<ConflictLog>()) {}

RuntimeState::~RuntimeState() = default;

std::shared_ptr<Policy> RuntimeState::rate_limit_policy(const RouteConfig& route) {
  RouteState& state = routes_[route.name];
  // The buckets live in the store under "route/limit": a changed limit keeps its buckets, whose
  // levels the store carries over to the new shape (spent tokens stay spent).
  if (state.rate_limit == nullptr || !(state.rate_limit_config == route.rate_limit)) {
    state.rate_limit = std::make_shared<RateLimitPolicy>(route.name, *route.rate_limit, buckets_);
    state.rate_limit_config = route.rate_limit;
  }
  return state.rate_limit;
}

std::shared_ptr<Policy> RuntimeState::concurrency_policy(const RouteConfig& route) {
  RouteState& state = routes_[route.name];
  if (state.concurrency == nullptr || !(state.concurrency->config() == *route.concurrency)) {
    // The slots held and the queue carry over: requests in flight under the old limits count
    // against the new ones.
    // A changed max_keys applies to the same table (its 503s name the new number).
    if (state.slots == nullptr) {
      state.slots = std::make_shared<MemorySlotTable>(route.concurrency->max_keys);
    } else {
      state.slots->set_max_keys(route.concurrency->max_keys);
    }
    state.concurrency = std::make_shared<ConcurrencyPolicy>(route.name, *route.concurrency, state.slots);
  }
  return state.concurrency;
}

std::shared_ptr<Policy> RuntimeState::etag_policy(const RouteConfig& route) {
  RouteState& state = routes_[route.name];
  if (state.etag == nullptr || !(state.etag->config() == *route.etag) || &state.etag->store() != versions_.get()) {
    state.etag = std::make_shared<EtagPolicy>(route.name, *route.etag, versions_, conflicts_);
  }
  return state.etag;
}

void RuntimeState::size_resource_state(const std::vector<RouteConfig>& routes) {
  std::size_t capacity = 0;
  for (const RouteConfig& route : routes) {
    if (route.etag) capacity = std::max(capacity, route.etag->max_entries);
  }
  if (capacity == 0) {
    // No ETag route: the table goes (Runtimes still using it keep it until their last request
    // ends); the write queues stay, as always.
    versions_.reset();
    return;
  }
  // A new capacity needs a new table (the versions are then learned again from the backend);
  // the write queues carry over, so turns held under the old table still serialize.
  if (versions_ == nullptr || versions_->max_entries() != capacity) {
    versions_ = std::make_shared<MemoryVersionStore>(capacity, 0, write_queues_);
  }
}

void RuntimeState::keep_only(const std::vector<RouteConfig>& routes) {
  for (auto it = routes_.begin(); it != routes_.end();) {
    bool kept = std::any_of(routes.begin(), routes.end(), [&](const RouteConfig& r) { return r.name == it->first; });
    it = kept ? std::next(it) : routes_.erase(it);
  }
  for (const RouteConfig& route : routes) {
    auto it = routes_.find(route.name);
    if (it == routes_.end()) continue;
    RouteState& state = it->second;
    if (!route.rate_limit) {
      state.rate_limit.reset();
      state.rate_limit_config.reset();
    }
    if (!route.concurrency) {
      state.concurrency.reset();
      state.slots.reset();
    }
    if (!route.etag) state.etag.reset();
  }
}

Runtime::Runtime(Config config, RuntimeState& state)
    : config_(std::move(config)), router_(config_.routes, config_.server.case_insensitive_paths) {
  routes_.reserve(config_.routes.size());
  state.size_resource_state(config_.routes);
  for (const RouteConfig& route : config_.routes) {
    RouteRuntime rt;
    rt.config = &route;
    // Policy order is the request-phase order: the cheap refusal (rate limit) first, then the
    // in-flight slot (held while the request is at the backend, ETag re-reads included), then
    // the ETag check, which may read the backend.
    if (route.rate_limit) rt.policies.push_back(state.rate_limit_policy(route));
    if (route.concurrency) rt.policies.push_back(state.concurrency_policy(route));
    if (route.etag) rt.policies.push_back(state.etag_policy(route));
    for (const auto& policy : rt.policies) {
      rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
    }
    routes_.push_back(std::move(rt));
  }
  state.keep_only(config_.routes);
}

void Runtime::append_policy(std::size_t route, std::shared_ptr<Policy> policy) {
  RouteRuntime& rt = routes_.at(route);
  rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
  rt.policies.push_back(std::move(policy));
}

}  // namespace arbiter
