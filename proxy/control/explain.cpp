#include "proxy/control/explain.h"

#include "proxy/control/control_access.h"
#include "proxy/control/control_endpoints.h"
#include "proxy/http/path_normalization.h"
#include "proxy/exchange/runtime.h"

namespace arbiter {

std::string explain_request(const Config& config, std::string_view method, std::string_view target,
                            const HeaderList& headers) {
  // The very policy objects a server would build from this file explain themselves.
  RuntimeState state;
  Runtime runtime(config, state);
  std::string out = "request:   " + std::string(method) + " " + std::string(target) + "\n";
  // The normalisation a server applies before routing.
  NormalTarget normal;
  std::string why;
  if (!normalize_target(target, config.server.case_insensitive_paths, normal, why)) {
    return out + "path:      cannot be normalised: 400 problem+json (urn:arbiter:problem:malformed-path): " + why + "\n";
  }
  if (normal.target != target) out += "normalised: " + normal.target + "\n";
  if (!normal.routed_path.empty()) out += "routed as: " + normal.routed_path + " (case_insensitive_paths)\n";
  if (in_control_namespace(normal.path(), config.server.control_prefix, config.server.case_insensitive_paths)) {
    return out + "route:     none: the path lies under [server] control_prefix " + config.server.control_prefix +
           ", answered by Arbiter's control endpoints before routing (GET " + config.server.control_prefix +
           "/ lists them; 404/405 problem+json for the rest)\n" + control_access_summary(config.control) + "\n";
  }
  RouteMatch match;
  std::string allowed;
  switch (runtime.router().match(method, normal.routed(), match, &allowed)) {
    case Router::Outcome::NotFound:
      return out + "route:     none matches: 404 problem+json (urn:arbiter:problem:route-not-found)\n";
    case Router::Outcome::MethodNotAllowed:
      return out + "route:     the path matches, but no route takes " + std::string(method) +
             ": 405 problem+json with Allow: " + allowed + "\n";
    case Router::Outcome::Matched:
      break;
  }
  const RouteRuntime& route = runtime.route(match.route_index);
  const RouteConfig& rc = *route.config;
  out += "route:     " + rc.name + " (" + config.file + ":" + std::to_string(rc.line) + ")  path " + rc.path + "\n";
  if (!match.params.empty()) {
    out += "params:   ";
    for (const PathParam& param : match.params) out += " " + std::string(param.name) + "=" + std::string(param.value);
    out += "\n";
  }
  if (const UpstreamConfig* upstream = config.find_upstream(rc.upstream)) {
    out += "upstream:  " + upstream->name + " (";
    for (std::size_t i = 0; i < upstream->servers.size(); ++i) out += (i ? ", " : "") + upstream->servers[i].text();
    out += ")\n";
  }
  if (route.policies.empty()) return out + "policies:  none: forwarded as it is\n";
  RequestView view{method,  normal.target, normal.path(), normal.query(), headers,
                   "<client address>", rc.name, match.params, "<request id>", MonotonicClock::now(),
                   nullptr, normal.routed_path};
  out += "policies, in the order they run:\n";
  for (std::size_t i = 0; i < route.policies.size(); ++i) {
    const Policy& policy = *route.policies[i];
    out += "  " + std::to_string(i + 1) + ". " + std::string(policy.kind()) + ": " + policy.explain(view) + "\n";
    if (policy.answers_itself(view)) {
      if (i + 1 < route.policies.size()) out += "  (the policies after it do not run for " + std::string(method) + ")\n";
      return out + "then:      answered by Arbiter (" + std::string(policy.kind()) + "); never forwarded to the upstream\n";
    }
  }
  return out + "then:      forwarded to the upstream if every policy lets it through\n";
}

}  // namespace arbiter
