#pragma once
// Whose request it is, for the policies that count per client (rate limits, in-flight caps).

#include <string>
#include <string_view>

#include "policies/policy.h"

namespace arbiter {

enum class KeyKind : std::uint8_t {
  ClientAddress,  // the client's address (X-Forwarded-For only from trusted proxies)
  Header,         // a request field's value, e.g. an API key
  Global,         // everyone together: one key for the route
};

// "ip", "header:X-Api-Key", "global": as the configuration writes it.
std::string key_name(KeyKind kind, std::string_view header);

// The key of a request. Header: the first field of that name; a request without it, or with an
// empty value, is keyed by its client address instead, so that leaving the field out never
// joins a bucket shared by everyone who did. The two never meet: a header key is "header:"
// followed by the value, which no address starts with, so a client cannot spend another's
// tokens by sending that client's address as its key. Global: the empty string.
std::string request_key(const RequestView& request, KeyKind kind, std::string_view header);

}  // namespace arbiter
