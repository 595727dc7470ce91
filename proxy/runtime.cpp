#include "proxy/runtime.h"

#include <algorithm>

#include "policies/etag_policy.h"
#include "policies/memory_version_store.h"

namespace arbiter {

Runtime::Runtime(Config config) : config_(std::move(config)), router_(config_.routes) {
  routes_.reserve(config_.routes.size());
  for (const RouteConfig& route : config_.routes) {
    RouteRuntime rt;
    rt.config = &route;
    for (std::size_t i = 0; i < config_.upstreams.size(); ++i) {
      if (config_.upstreams[i].name == route.upstream) rt.upstream_index = i;
    }
    // Policy order is the request-phase order: cheap refusals (rate limits, later) come before
    // the ETag check, which may read the backend.
    if (route.etag) {
      rt.policies.push_back(std::make_shared<EtagPolicy>(
          route.name, *route.etag, std::make_shared<MemoryVersionStore>(route.etag->max_entries)));
    }
    for (const auto& policy : rt.policies) {
      rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
    }
    routes_.push_back(std::move(rt));
  }
}

}  // namespace arbiter
