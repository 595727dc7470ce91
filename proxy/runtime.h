#pragma once
// The effective configuration as the workers use it: the parsed Config, its compiled router,
// and each route's policy chain. Immutable once built and shared by every worker; a request
// holds a reference to the Runtime it started under, so a later swap never changes the
// policies of a request in flight.

#include <memory>
#include <string>
#include <vector>

#include "policies/policy.h"
#include "proxy/config.h"
#include "proxy/router.h"

namespace arbiter {

struct RouteRuntime {
  const RouteConfig* config = nullptr;
  std::size_t upstream_index = 0;  // into Runtime::config.upstreams
  std::vector<std::shared_ptr<Policy>> policies;
  // The largest response body any policy of this route wants to see; 0 = stream everything.
  std::size_t response_body_limit = 0;
};

class Runtime {
 public:
  explicit Runtime(Config config);
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const Config& config() const noexcept { return config_; }
  const Router& router() const noexcept { return router_; }
  const RouteRuntime& route(std::size_t i) const { return routes_[i]; }
  std::size_t route_count() const noexcept { return routes_.size(); }

 private:
  Config config_;
  Router router_;
  std::vector<RouteRuntime> routes_;
};

}  // namespace arbiter
