#include "proxy/http/address.h"

#include <arpa/inet.h>

#include <cstring>

namespace arbiter {

namespace {

// True if the first `bits` bits of a and b agree.
bool same_prefix(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) noexcept {
  unsigned whole_bytes = bits / 8;
  if (std::memcmp(a, b, whole_bytes) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole_bytes] & mask) == (b[whole_bytes] & mask);
}

bool is_ipv4_mapped(const std::uint8_t* ipv6) noexcept {
  static constexpr std::uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(ipv6, kPrefix, sizeof kPrefix) == 0;
}

}  // namespace

// inet_pton wants a NUL-terminated string; the copy lives on the stack so that
// Cidr::contains, which runs per request, allocates nothing.
bool parse_ip_address(std::string_view text, int family, void* out) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buffer || text.find('\0') != std::string_view::npos) {
    return false;
  }
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return inet_pton(family, buffer, out) == 1;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  Cidr cidr;
  cidr.text = std::string(text);
  std::size_t slash = text.find('/');
  std::string_view address = text.substr(0, slash);
  cidr.ipv6 = address.find(':') != std::string_view::npos;
  if (!parse_ip_address(address, cidr.ipv6 ? AF_INET6 : AF_INET, cidr.bytes)) return std::nullopt;
  unsigned address_bits = cidr.ipv6 ? 128 : 32;
  cidr.prefix_length = address_bits;
  if (slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    if (prefix.empty() || prefix.size() > 3) return std::nullopt;
    unsigned length = 0;
    for (char c : prefix) {
      if (c < '0' || c > '9') return std::nullopt;
      length = length * 10 + static_cast<unsigned>(c - '0');
    }
    if (length > address_bits) return std::nullopt;
    cidr.prefix_length = length;
  }
  // Bits set after the prefix ("10.0.0.1/8") are refused rather than masked: this list decides
  // whose X-Forwarded-For is believed, and a typo there should not quietly trust a whole network.
  for (unsigned bit = cidr.prefix_length; bit < address_bits; ++bit) {
    if (cidr.bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  }
  return cidr;
}

bool Cidr::contains(std::string_view address) const {
  std::uint8_t parsed[16];
  bool address_is_ipv6 = address.find(':') != std::string_view::npos;
  if (!parse_ip_address(address, address_is_ipv6 ? AF_INET6 : AF_INET, parsed)) return false;
  const std::uint8_t* compared = parsed;
  if (address_is_ipv6 && !ipv6) {
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    if (!is_ipv4_mapped(parsed)) return false;
    compared = parsed + 12;
  } else if (!address_is_ipv6 && ipv6) {
    return false;
  }
  return same_prefix(compared, bytes, prefix_length);
}

}  // namespace arbiter
