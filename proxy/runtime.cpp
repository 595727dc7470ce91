#include "proxy/runtime.h"

#include <algorithm>

namespace arbiter {

Runtime::Runtime(Config config) : config_(std::move(config)), router_(config_.routes) {
  routes_.reserve(config_.routes.size());
  for (const RouteConfig& route : config_.routes) {
    RouteRuntime rt;
    rt.config = &route;
    for (std::size_t i = 0; i < config_.upstreams.size(); ++i) {
      if (config_.upstreams[i].name == route.upstream) rt.upstream_index = i;
    }
    for (const auto& policy : rt.policies) {
      rt.response_body_limit = std::max(rt.response_body_limit, policy->response_body_limit());
    }
    routes_.push_back(std::move(rt));
  }
}

}  // namespace arbiter
