#pragma once
// Hexadecimal digits, as percent-encoding (RFC 3986 section 2.1) and UUIDs write them.

namespace arbiter {

// The value of a hex digit of either case; -1 for anything else.
inline int hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace arbiter
