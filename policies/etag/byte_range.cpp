#include "policies/etag/byte_range.h"

#include <charconv>

#include "proxy/http/headers.h"

namespace arbiter {

namespace {

bool parse_position(std::string_view text, std::uint64_t& out) noexcept {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

RangeSelection select_byte_range(std::string_view range_field, std::uint64_t length, ByteRange& out) noexcept {
  range_field = without_ows(range_field);
  constexpr std::string_view kUnit = "bytes=";
  if (!iequals(range_field.substr(0, kUnit.size()), kUnit)) return RangeSelection::Ignore;
  std::string_view spec = without_ows(range_field.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return RangeSelection::Ignore;
  std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeSelection::Ignore;
  std::string_view first_text = spec.substr(0, dash);
  std::string_view last_text = spec.substr(dash + 1);
  std::uint64_t first = 0, last = 0;
  if (first_text.empty()) {  // suffix: the last N bytes
    if (!parse_position(last_text, last)) return RangeSelection::Ignore;
    if (last == 0 || length == 0) return RangeSelection::Unsatisfiable;
    out = {length > last ? length - last : 0, length - 1};
    return RangeSelection::Satisfiable;
  }
  if (!parse_position(first_text, first)) return RangeSelection::Ignore;
  if (last_text.empty()) {
    last = UINT64_MAX;
  } else if (!parse_position(last_text, last) || last < first) {
    return RangeSelection::Ignore;  // invalid: the field is ignored (section 14.1.1)
  }
  if (first >= length) return RangeSelection::Unsatisfiable;
  out = {first, last < length ? last : length - 1};
  return RangeSelection::Satisfiable;
}

std::string content_range(const ByteRange& range, std::uint64_t length) {
  return "bytes " + std::to_string(range.first) + "-" + std::to_string(range.last) + "/" + std::to_string(length);
}

}  // namespace arbiter
