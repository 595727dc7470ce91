#include "proxy/runtime.h"

#include <algorithm>

#include "policies/concurrency_policy.h"
#include "policies/etag_policy.h"
#include "policies/memory_bucket_store.h"
#include "policies/rate_limit_policy.h"
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
    // Policy order is the request-phase order: the cheap refusal (rate limit) first, then the
    // in-flight slot (held while the request is at the backend, ETag re-reads included), then
    // the ETag check, which may read the backend.
    if (route.rate_limit) {
      rt.policies.push_back(std::make_shared<RateLimitPolicy>(route.name, *route.rate_limit,
                                                              std::make_shared<MemoryBucketStore>()));
    }
    if (route.concurrency) {
      rt.policies.push_back(std::make_shared<ConcurrencyPolicy>(route.name, *route.concurrency));
    }
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
