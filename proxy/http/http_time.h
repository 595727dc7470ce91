#pragma once
// Times as HTTP messages and JSON bodies write them.

#include <chrono>
#include <string>

namespace arbiter {

// RFC 3339 in UTC, to the second: "2026-12-01T12:57:12Z".
std::string rfc3339_utc(std::chrono::system_clock::time_point at);

// The wall-clock moment of `at` on the steady clock, given that it is `now` there: for telling
// clients when something measured on the steady clock (a lease's end) happens.
template <typename SteadyTime>
std::chrono::system_clock::time_point wall_time_of(SteadyTime at, SteadyTime now) {
  return std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(at - now);
}

}  // namespace arbiter
