#pragma once
// Reading a request's query (the part of the target after '?').

#include <optional>
#include <string>
#include <string_view>

namespace arbiter {

// The value of the first `name=value` pair of `query` ("a=1&b=2"), percent-decoded (RFC 3986
// section 2.1; '+' stays '+', so a path passed as a value keeps its own); "" for a bare `name`.
// nullopt when the name is absent or its value has a malformed or NUL escape.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace arbiter
