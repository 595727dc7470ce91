#pragma once
// The resource a request is about: the key under which the resource state of the policies is
// kept (versions, write turns, locks), shared by every route that resolves a request to it. By
// default the request's normalised path (lower-cased under [server] case_insensitive_paths); a
// policy's `resource = "/items/{id}"` template builds it from the route's {param}s instead, so
// that routes with different paths to one resource share its state.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policies/config_reader.h"
#include "policies/policy.h"

namespace arbiter {

// The {param} names of a path pattern or key template, in order; nullopt when malformed (an
// unbalanced brace, an empty name).
std::optional<std::vector<std::string_view>> template_param_names(std::string_view pattern);

// The proxy keys resources by the lower-cased path ([server] case_insensitive_paths): it sets
// RequestView::resource_path exactly then (policies/policy.h), to the request's path so keyed.
inline bool keys_lower_case_paths(const RequestView& request) noexcept { return !request.resource_path.empty(); }

// The request's resource key under `pattern` (a template checked by read_resource_template;
// empty: the path).
std::string resource_key(const RequestView& request, std::string_view pattern);

// Reads `resource` of a policy's table into `out`, checking it is a well-formed template whose
// {param}s the route's path (route_path, when valid) captures; errors are reported on `reader`.
void read_resource_template(const TableReader& reader, std::optional<std::string_view> route_path, std::string& out);

}  // namespace arbiter
