#include "proxy/http/http_time.h"

#include <cctype>
#include <cstring>
#include <ctime>

namespace arbiter {

namespace {

std::tm utc_of(std::chrono::system_clock::time_point at) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(at));
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return utc;
}

std::string formatted(std::chrono::system_clock::time_point at, const char* format) {
  std::tm utc = utc_of(at);
  char text[40];
  std::size_t length = std::strftime(text, sizeof text, format, &utc);
  return std::string(text, length);
}

// `text` read whole by strptime's `format` (in the C locale's names), as UTC.
std::optional<std::chrono::system_clock::time_point> parsed(const std::string& text, const char* format) {
  std::tm utc{};
  const char* end = strptime(text.c_str(), format, &utc);
  if (end == nullptr || *end != '\0') return std::nullopt;
  std::time_t seconds = timegm(&utc);
  if (seconds == static_cast<std::time_t>(-1)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(seconds);
}

}  // namespace

std::string rfc3339_utc(std::chrono::system_clock::time_point at) { return formatted(at, "%Y-%m-%dT%H:%M:%SZ"); }

std::string http_date(std::chrono::system_clock::time_point at) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm utc = utc_of(at);
  char text[40];
  int length = std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday], utc.tm_mday,
                             kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return std::string(text, static_cast<std::size_t>(length));
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string owned(text);
  // IMF-fixdate, then the two obsolete forms (RFC 9110 section 5.6.7: recipients accept all three).
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    if (auto at = parsed(owned, format)) return at;
  }
  return std::nullopt;
}

}  // namespace arbiter
