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

// `value` written as a query value: every byte but RFC 3986's unreserved characters and '/'
// percent-encoded, so query_param reads it back as it was ("/items/a&b" -> "/items/a%26b").
std::string query_value(std::string_view value);

}  // namespace arbiter
