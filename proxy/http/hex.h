#pragma once
// Hexadecimal digits, as percent-encoding (RFC 3986 section 2.1), UUIDs and digests (SHA-256 of
// control tokens, HMAC signatures of webhooks) write them.

#include <cstddef>
#include <string>

namespace arbiter {

// The value of a hex digit of either case; -1 for anything else.
inline int hex_digit_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `size` bytes as lower-case hex, two digits a byte.
inline std::string lower_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace arbiter
