#pragma once
// Range requests (RFC 9110 section 14) over a representation Arbiter holds whole: which bytes
// a Range field selects. Pure functions, no state.

#include <cstdint>
#include <string>
#include <string_view>

namespace arbiter {

struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};

enum class RangeSelection : std::uint8_t {
  Ignore,         // not one "bytes=" range Arbiter serves (another unit, a list, malformed): send it all
  Satisfiable,    // the range in `out`, clipped to the representation
  Unsatisfiable,  // 416: the range starts past the end (or the representation is empty)
};

// One byte range ("bytes=0-99", "bytes=100-", "bytes=-100") of a representation of `length`
// bytes. A list of several ranges is ignored (a server may answer 200 instead of multipart).
RangeSelection select_byte_range(std::string_view range_field, std::uint64_t length, ByteRange& out) noexcept;

// "bytes 0-99/1234"
std::string content_range(const ByteRange& range, std::uint64_t length);

}  // namespace arbiter
