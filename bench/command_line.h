#pragma once
// Command-line helpers shared by the bench drivers.

#include <cstdlib>
#include <optional>

namespace bench {

// `text` as a whole decimal number within [min, max]; nullopt for anything else.
inline std::optional<long> parse_number(const char* text, long min, long max) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < min || value > max) return std::nullopt;
  return value;
}

}  // namespace bench
