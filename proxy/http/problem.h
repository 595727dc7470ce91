#pragma once
// Problem details (RFC 9457): the body of every answer Arbiter makes itself.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace arbiter {

inline constexpr std::string_view kProblemContentType = "application/problem+json";

struct Problem {
  int status = 500;
  // A stable identifier of the kind of problem, "urn:arbiter:problem:<slug>", so that a client
  // can branch on it without parsing the title.
  std::string type;
  std::string title;   // short, the same for every occurrence of this type
  std::string detail;  // this occurrence, naming what went wrong
  // Extension members (RFC 9457 section 3.2), e.g. "violated-policies".
  std::vector<std::pair<std::string, nlohmann::json>> extensions;

  // slug names the type: make("route-not-found", 404, "No route", "...").
  static Problem make(std::string_view slug, int status, std::string title, std::string detail);

  // The JSON body. request_id, when not empty, is carried as the "request-id" member and as
  // the "instance" ("urn:arbiter:request:<id>") so a report can be matched to the access log.
  std::string to_json(std::string_view request_id) const;
};

// The reason phrase for a status code ("Not Found"), or "Unknown" for codes it does not list.
std::string_view reason_phrase(int status) noexcept;

}  // namespace arbiter
