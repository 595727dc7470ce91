#pragma once
// The conflicts page (issue #16) and the counters it shows, under [server] control_prefix (P):
//   GET P/ui          308 to P/ui/
//   GET P/ui/         the page (text/html); P/ui/app.js and P/ui/app.css its script and style.
//                     Embedded in the binary (proxy/control/ui_assets.h), served with a strict
//                     Content-Security-Policy (nothing inline, nothing from another origin).
//                     Any other file under P/ui/ is the 404 problem.
//   GET P/stats       200 {"routes": [{"route", "writes", "conflicts", "merges", "rate_limited",
//                     "locks_held"}, ...]}: one entry per route of the configuration in force,
//                     in its order (see RouteStats).
// The page's files are kScopePublic: they hold no data, and a browser cannot send a bearer token
// with a navigation, so the page must load to ask for one (with [control] tokens they need none;
// without, `allow` decides as for every control endpoint). Every request the page makes
// (P/stats, the feed, records, resolve) needs its scope.

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/control/admin_endpoints.h"
#include "proxy/control/handler_registry.h"
#include "proxy/observe/metrics.h"

namespace arbiter {

// One route's counters as the page shows them, read from what /metrics reports (nothing is
// counted twice): since start, or since the route's policy was last replaced by a reload.
struct RouteStats {
  std::string route;
  std::uint64_t writes = 0;        // POST, PUT, PATCH and DELETE answered, whatever the status
  std::uint64_t conflicts = 0;     // arbiter_etag_decisions_total: conflict + merge_conflict
  std::uint64_t merges = 0;        // arbiter_etag_decisions_total: merged
  std::uint64_t rate_limited = 0;  // arbiter_rate_limit_decisions_total: limited, every limit
  std::uint64_t locks_held = 0;    // arbiter_locks_held (now, not a count since start)
};

// The counters of each of `routes`, in that order, from the request metrics and the policies'
// families (policy_metric_families). A route without a policy kind counts 0 for its families.
std::vector<RouteStats> route_stats(const std::vector<std::string>& routes, const MetricsSnapshot& requests,
                                    const std::vector<MetricFamily>& policy_families);

// GET P/stats's body.
std::string route_stats_json(const std::vector<RouteStats>& stats);

// Registers the endpoints above on the control registry; `services` (the worker) must outlive it.
void add_ui_endpoints(HandlerRegistry& control, AdminServices& services);

}  // namespace arbiter
