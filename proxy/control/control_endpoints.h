#pragma once
// The client-facing control namespace, [server] control_prefix (default "/_arbiter"): requests
// on a client listener whose normalised path is the prefix or lies below it ("/_arbiter",
// "/_arbiter/...") are answered by the worker's control registry, before routing, so no route
// ever sees them. The configuration refuses a route whose pattern lies inside the prefix; a
// pattern that only overlaps it (a catch-all "/*", "/{tenant}/*") stays legal and simply never
// gets those paths.
//
// Today the namespace serves one endpoint:
//   GET {prefix}/   200 application/json: {"endpoints":[{"path","methods","summary"},...]},
//                   the control endpoints enabled, this one included.
// Anything else under the prefix is the registry's 404 (or 405) problem.

#include <string_view>

#include "proxy/control/handler_registry.h"

namespace arbiter {

// Registers the product's control endpoints (the list above) on `registry`, which must outlive
// them (the index lists the registry's entries when it is asked, so it shows handlers added
// later too).
void add_control_endpoints(HandlerRegistry& registry);

// The request path (normalised) is the control prefix or lies below it: "/_arbiter" and
// "/_arbiter/..." but not "/_arbiterx". case_insensitive: [server] case_insensitive_paths
// (ASCII letters compared without case). No allocation: it runs for every request.
bool in_control_namespace(std::string_view path, std::string_view prefix, bool case_insensitive) noexcept;

}  // namespace arbiter
