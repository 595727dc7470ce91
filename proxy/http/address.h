#pragma once
// Numeric IP addresses and networks, as the trusted-proxy list and listen addresses name them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace arbiter {

// An IPv4 or IPv6 network, e.g. "10.0.0.0/8" or "::1/128"; a bare address is a /32 or /128.
struct Cidr {
  bool ipv6 = false;
  std::uint8_t bytes[16] = {};
  unsigned prefix_length = 0;
  bool contains(std::string_view address) const;  // numeric address; false if unparsable
  std::string text;  // as written in the config
};

// "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128); nullopt when malformed or when
// bits are set after the prefix.
std::optional<Cidr> parse_cidr(std::string_view text);

// inet_pton of a numeric address of `family` (AF_INET, AF_INET6) into `out`; false when it is
// not one. Allocates nothing.
bool parse_ip_address(std::string_view text, int family, void* out);

}  // namespace arbiter
