#include "proxy/exchange/runtime.h"

#include <algorithm>

namespace arbiter {

RuntimeState::RuntimeState() = default;

RuntimeState::~RuntimeState() = default;

std::vector<std::vector<std::shared_ptr<Policy>>> RuntimeState::policies_for(const Config& config) {
  struct Made {
    int position;
    std::shared_ptr<Policy> policy;
  };
  std::vector<std::vector<Made>> made(config.routes.size());
  for (const PolicyKind* kind : config.policy_kinds.kinds()) {
    std::vector<PolicyKindState::Use> uses;
    std::vector<std::size_t> route_of_use;
    for (std::size_t r = 0; r < config.routes.size(); ++r) {
      for (const auto& policy : config.routes[r].policies) {
        if (&policy->kind() != kind) continue;
        uses.push_back({config.routes[r].name, policy});
        route_of_use.push_back(r);
      }
    }
    auto it = kinds_.find(kind);
    if (it == kinds_.end()) {
      if (uses.empty()) continue;  // nothing to make, nothing to forget
      it = kinds_.emplace(kind, kind->make_state(stores_)).first;
    }
    std::vector<std::shared_ptr<Policy>> policies = it->second->policies(uses);
    for (std::size_t u = 0; u < uses.size(); ++u) {
      made[route_of_use[u]].push_back({kind->chain_position(), std::move(policies.at(u))});
    }
  }
  // A kind this configuration was not read with has no route using it any more.
  const std::vector<const PolicyKind*>& read_with = config.policy_kinds.kinds();
  for (auto& [kind, state] : kinds_) {
    if (std::find(read_with.begin(), read_with.end(), kind) == read_with.end()) state->policies({});
  }
  std::vector<std::vector<std::shared_ptr<Policy>>> chains(config.routes.size());
  for (std::size_t r = 0; r < made.size(); ++r) {
    std::stable_sort(made[r].begin(), made[r].end(),
                     [](const Made& a, const Made& b) { return a.position < b.position; });
    for (Made& m : made[r]) chains[r].push_back(std::move(m.policy));
  }
  return chains;
}

Runtime::Runtime(Config config, RuntimeState& state)
    : config_(std::move(config)), router_(config_.routes, config_.server.case_insensitive_paths) {
  // Policy order is the request-phase order, each kind's chain_position: the cheap refusal
  // (rate limit) first, then the in-flight slot (held while the request is at the backend,
  // ETag re-reads included), then the ETag check, which may read the backend.
  std::vector<std::vector<std::shared_ptr<Policy>>> chains = state.policies_for(config_);
  state.stores().feed->set_limits(config_.control.feed);
  routes_.reserve(config_.routes.size());
  for (std::size_t r = 0; r < config_.routes.size(); ++r) {
    RouteRuntime rt;
    rt.config = &config_.routes[r];
    rt.policies = std::move(chains[r]);
    for (const auto& policy : rt.policies) {
      rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
    }
    routes_.push_back(std::move(rt));
  }
}

void Runtime::append_policy(std::size_t route, std::shared_ptr<Policy> policy) {
  RouteRuntime& rt = routes_.at(route);
  rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
  rt.policies.push_back(std::move(policy));
}

}  // namespace arbiter
