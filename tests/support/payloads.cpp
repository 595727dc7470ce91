#include <cstdio>

#include "tests/support/harness.h"

// Header-only use, so the test binary needs no libxxhash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cinttypes>

namespace harness {

std::string pattern_bytes(std::size_t length) {
  std::string bytes(length, '\0');
  for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<char>('a' + i % 26);
  return bytes;
}

std::string xxh3_hex(std::string_view bytes) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016" PRIx64, static_cast<std::uint64_t>(XXH3_64bits(bytes.data(), bytes.size())));
  return hex;
}

std::string chunked_encoding(const std::vector<std::string>& chunks) {
  std::string encoded;
  char size_line[32];
  for (const auto& chunk : chunks) {
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
    encoded.append(size_line).append(chunk).append("\r\n");
  }
  return encoded + "0\r\n\r\n";
}

}  // namespace harness
