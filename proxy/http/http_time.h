#pragma once
// Times as HTTP messages and JSON bodies write them.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace arbiter {

// RFC 3339 in UTC, to the second: "2026-12-01T12:57:12Z".
std::string rfc3339_utc(std::chrono::system_clock::time_point at);

// An HTTP-date in the preferred IMF-fixdate form: "Tue, 01 Dec 2026 12:57:12 GMT".
std::string http_date(std::chrono::system_clock::time_point at);

// An HTTP-date in any of the three forms RFC 9110 section 5.6.7 has recipients accept
// (IMF-fixdate, RFC 850, asctime), surrounding whitespace ignored; nullopt when it is none.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text);

// The wall-clock moment of `at` on the steady clock, given that it is `now` there: for telling
// clients when something measured on the steady clock (a lease's end) happens.
template <typename SteadyTime>
std::chrono::system_clock::time_point wall_time_of(SteadyTime at, SteadyTime now) {
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(at - now);
}

}  // namespace arbiter
